#pragma once
// The resolver's self-check ([dns] validation_canary, bogus_canary, health_interval): at start
// and then every interval, the canary must validate as secure (default: the root's DNSKEY RRset)
// and, when configured, the bogus canary must fail validation. While the check fails, every
// delivery is deferred with 4.4.3 "DNSSEC validation is not working" rather than sent as if the
// world were unsigned ([dns] on_validation_failure = "deliver" lifts that for domains not under
// mandatory DANE, with a warning per delivery; DNSSEC-bogus answers still defer, step 1).
// After a failed check the next comes soon (5 s, doubling up to health_interval), so that a
// short DNS outage ends within seconds; when a check passes again, OnRecovered's callback runs
// (the delivery agent makes the mail it deferred for this reason due at once).
// The state goes to the log (an error at each failed check), the metrics, and a status file in
// the queue directory that `danerelay queue stats` shows.
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "dns/options.hpp"

namespace asio {
class io_context;
}
namespace danerelay::dns {
class Lookup;
}

namespace danerelay::relay {

// The reply (status 4.4.3) of a delivery deferred because the check failed; the delivery agent
// finds those recipients by it when validation works again.
inline constexpr std::string_view kValidationNotWorking = "DNSSEC validation is not working";

class ResolverHealth {
 public:
  ResolverHealth(asio::io_context& io, dns::Lookup& resolver, dns::ResolverOptions options,
                 std::filesystem::path status_file);
  ~ResolverHealth();
  void Start();
  void Stop();
  void Reload(const dns::ResolverOptions& options);
  // Runs on the io thread each time a check passes after one failed.
  void OnRecovered(std::function<void()> callback);

  // False only after a check failed (and until one passes); true before the first check.
  bool ValidationWorks() const;
  std::string Problem() const;      // what the last failed check saw
  bool DeliverAnyway() const;       // on_validation_failure = "deliver"
  std::string MetricsText() const;  // gauges for the Prometheus endpoint

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// The status file's name in the queue directory, and what `queue stats` makes of it: one line,
// or "" when there is no file (no daemon has run a check).
std::filesystem::path ResolverStatusFile(const std::filesystem::path& queue_dir);
std::string DescribeResolverStatus(const std::filesystem::path& queue_dir, bool* ok = nullptr);

}  // namespace danerelay::relay
