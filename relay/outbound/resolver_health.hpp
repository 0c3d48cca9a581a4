#pragma once
// The resolver's self-check ([dns] validation_canary, bogus_canary, health_interval): at start
// and then every interval, the canary must validate as secure (default: the root's DNSKEY RRset)
// and, when configured, the bogus canary must fail validation. While the check fails, every
// delivery is deferred with 4.4.3 "DNSSEC validation is not working" rather than sent as if the
// world were unsigned ([dns] on_validation_failure = "deliver" lifts that for domains not under
// mandatory DANE, with a warning per delivery; DNSSEC-bogus answers still defer, step 1).
// The state goes to the log (an error at each failed check), the metrics, and a status file in
// the queue directory that `danerelay queue stats` shows.
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "dns/options.hpp"

namespace asio {
class io_context;
}
namespace danerelay::dns {
class Resolver;
}

namespace danerelay::relay {

class ResolverHealth {
 public:
  ResolverHealth(asio::io_context& io, dns::Resolver& resolver, dns::ResolverOptions options,
                 std::filesystem::path status_file);
  ~ResolverHealth();
  void Start();
  void Stop();
  void Reload(const dns::ResolverOptions& options);

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
