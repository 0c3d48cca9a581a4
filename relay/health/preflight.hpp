#pragma once
// The pre-flight check of mandatory-DANE domains ([dane] preflight_interval, 6 h; "0s" turns it
// off): at start, after each reload and then every interval, each domain in [dane]
// mandatory_domains (".example.org" is checked as example.org) goes through the probe that
// `danerelay dane-check` runs (DNS, the DANE policy, a STARTTLS probe; no mail is sent). A
// domain whose mail would be deferred right now gets a warning naming the domain, the MX host
// and the reason, so that a broken TLSA record is noticed before mail piles up for days. The
// result goes to a status file in the queue directory (`danerelay queue stats`) and to the
// metrics.
#include <asio/ssl/context.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "relay/options.hpp"

namespace asio {
class io_context;
}
namespace danerelay::dns {
class Lookup;
}

namespace danerelay::relay {

class Preflight {
 public:
  Preflight(asio::io_context& io, dns::Lookup& resolver, DeliveryOptions options,
            std::string helo_name, std::shared_ptr<asio::ssl::context> tls_context,
            std::filesystem::path status_file);
  ~Preflight();
  void Start();
  void Stop();
  // [[dkim.key]]s whose TXT records each round checks too: a warning when a record is
  // missing or holds another key (`danerelay dkim check` says more).
  void CheckDkimKeys(std::vector<DkimKeyOptions> keys);
  // New options and EHLO name; and check again now.
  void Reload(const DeliveryOptions& options, const std::string& helo_name);
  std::string MetricsText() const;  // gauges for the Prometheus endpoint

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// The domains the check covers: mandatory_domains without leading dots, each once.
std::vector<std::string> PreflightDomains(const std::vector<std::string>& mandatory_domains);

// The status file in the queue directory, and what `queue stats` makes of it: one line per
// domain, none when there is no file. `failing` counts the domains whose mail would be deferred.
std::filesystem::path PreflightStatusFile(const std::filesystem::path& queue_dir);
std::vector<std::string> DescribePreflightStatus(const std::filesystem::path& queue_dir,
                                                 int* failing = nullptr);

}  // namespace danerelay::relay
