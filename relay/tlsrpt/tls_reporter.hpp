#pragma once
// Sending TLS-RPT reports (RFC 8460 §5), when [tls_rpt] enabled: at start and then each day
// shortly after 00:00 UTC, for the previous UTC day (and the day before, for a daemon that was
// down at midnight), one report per recipient domain that had delivery sessions that day and
// publishes a _smtp._tls TXT record with rua= URIs. mailto: reports are queued in this queue
// (RFC 8460 §5.3) in the same transaction that records the report in tls_reports, so a report
// goes out once; https: reports are POSTed (§5.4, application/tlsrpt+gzip), recorded in the
// same transaction and tried again with growing pauses (for about 21 hours, across restarts).
// Domains in [routes] are not reported: their mail went to a smarthost, not to their MX hosts.
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "relay/options.hpp"

namespace asio {
class io_context;
}
namespace danerelay::dns {
class Resolver;
}
namespace danerelay::queue {
class Committer;
class QueueIdGenerator;
}  // namespace danerelay::queue

namespace danerelay::relay {

// While reports are sent, completed mail is kept at least this long (its attempts are the
// report's source).
inline constexpr std::chrono::seconds kTlsRptKeep = std::chrono::hours(48);

namespace dkim {
class SignerSlot;
}

class TlsReporter {
 public:
  // `queued`: called after a report mail was committed (wakes delivery).
  TlsReporter(asio::io_context& io, dns::Resolver& resolver, queue::Committer& committer,
              queue::QueueIdGenerator& ids, DeliveryOptions options, std::string hostname,
              std::function<void()> queued);
  ~TlsReporter();
  // Report mail is DKIM-signed by `slot` (RFC 8460 §3), which must outlive the reporter.
  void UseDkim(const dkim::SignerSlot* slot);
  void Start();
  void Stop();
  // New options and host name; and look for unsent reports now.
  void Reload(const DeliveryOptions& options, const std::string& hostname);

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace danerelay::relay
