#include "relay/health/preflight.hpp"

#include <spdlog/spdlog.h>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <fstream>

#include "dns/lookup.hpp"
#include "queue/message.hpp"
#include "relay/daemon/logging.hpp"
#include "relay/daemon/metrics.hpp"
#include "relay/dkim/key.hpp"
#include "relay/dkim/record.hpp"
#include "relay/health/dane_probe.hpp"
#include "relay/health/status_file.hpp"
#include "relay/io/connection.hpp"
#include "relay/io/periodic_task.hpp"
#include "relay/network.hpp"

namespace danerelay::relay {
namespace {

// One line per MX host that would not take the mail, from the probe's report.
std::vector<std::string> Problems(const ProbeReport& report) {
  std::vector<std::string> out;
  if (report.verdict == ProbeVerdict::kDelivered) return out;
  if (!report.reason.empty()) out.push_back(fmt::format("{} {}", report.status, report.reason));
  for (const auto& h : report.hosts) {
    for (const auto& c : h.connections) {
      if (c.ok) continue;
      out.push_back(fmt::format("MX host {}[{}]: {} {}", h.hop.name, c.ip, c.status, c.reason));
    }
    if (h.connections.empty()) {
      out.push_back(fmt::format("MX host {}: {} {}", h.hop.name,
                                h.status.empty() ? "4.4.4" : h.status, h.reason));
    }
  }
  if (out.empty()) out.push_back("no MX host would take the mail");
  return out;
}

}  // namespace

using Wait = std::chrono::steady_clock::duration;

struct Preflight::Impl : std::enable_shared_from_this<Impl> {
  asio::io_context& io;
  dns::Lookup& resolver;
  DeliveryOptions options;
  std::string helo_name;
  std::shared_ptr<asio::ssl::context> tls_context;
  std::filesystem::path status_file;
  PeriodicTask task;
  // domain -> whether its mail would be deferred now, from the last completed round.
  std::map<std::string, bool> failing;
  std::vector<DkimKeyOptions> dkim_keys;

  Impl(asio::io_context& i, dns::Lookup& r, DeliveryOptions o, std::string h,
       std::shared_ptr<asio::ssl::context> t, std::filesystem::path f)
      : io(i),
        resolver(r),
        options(std::move(o)),
        helo_name(std::move(h)),
        tls_context(std::move(t)),
        status_file(std::move(f)),
        task(i, "the pre-flight check") {}

  void WriteStatus(const nlohmann::json& domains) const {
    const nlohmann::json j = {{"checked", queue::FormatRfc5322Date(queue::Clock::now())},
                              {"domains", domains}};
    WriteStatusFile(status_file, j, "pre-flight");
  }

  asio::awaitable<void> Round() {
    nlohmann::json domains = nlohmann::json::array();
    std::map<std::string, bool> result;
    const std::vector<std::string> checked = PreflightDomains(options.mandatory_domains);
    for (const std::string& domain : checked) {
      // A copy: a reload may replace `options` while this round awaits.
      const DeliveryOptions opts = options;
      // Mandatory DANE decides for these domains; MTA-STS is not looked at.
      const ProbeReport report =
          co_await ProbeDomain(opts, helo_name, domain, true, resolver, tls_context, nullptr);
      if (task.stopping()) co_return;
      const auto problems = Problems(report);
      for (const auto& p : problems) {
        spdlog::warn("pre-flight: mail to mandatory-DANE domain {} would be deferred now: {}",
                     domain, p);
      }
      if (problems.empty()) {
        spdlog::info("pre-flight: mail to mandatory-DANE domain {} would be delivered via {}",
                     domain, report.via);
      }
      result[domain] = !problems.empty();
      domains.push_back({{"domain", domain},
                         {"ok", problems.empty()},
                         {"via", report.via},
                         {"problems", problems}});
    }
    failing = std::move(result);
    WriteStatus(domains);
    co_await CheckDkim();
  }

  // Each configured DKIM key against its published record.
  asio::awaitable<void> CheckDkim() {
    const std::vector<DkimKeyOptions> keys = dkim_keys;  // a reload may replace them
    for (const auto& k : keys) {
      const std::string name = dkim::KeyRecordName(k.selector, k.domain);
      const dns::TxtAnswer a = co_await resolver.LookupTxt(name);
      if (task.stopping()) co_return;
      auto key = dkim::LoadKey(k.key_file);
      std::string problem;
      if (!key) {
        problem = "the key does not load: " + key.error();
      } else if (a.rcode == dns::Rcode::kFailed || a.dnssec == dns::DnssecState::kBogus) {
        // Not a mismatch: nothing is known about the record.
        spdlog::warn("pre-flight: DKIM record {} cannot be checked: lookup failed ({}{})", name,
                     dns::ToString(a.dnssec), a.why.empty() ? "" : ": " + a.why);
        continue;
      } else if (a.rcode == dns::Rcode::kNxDomain || a.rcode == dns::Rcode::kNoData) {
        problem = "no record";
      } else {
        problem = dkim::KeyRecordProblem(*key, a.records);
      }
      if (problem.empty()) {
        spdlog::info("pre-flight: DKIM record {} matches {} (DNSSEC {})", name, k.key_file.string(),
                     dns::ToString(a.dnssec));
      } else {
        spdlog::warn(
            "pre-flight: DKIM record {} does not match the key {}: {}; receivers will "
            "fail these signatures",
            name, k.key_file.string(), problem);
      }
    }
  }

  // Checks the mandatory domains, then again every preflight_interval (0: once).
  void Start() {
    if (options.preflight_interval.count() == 0) return;
    task.Start([self = shared_from_this()]() -> asio::awaitable<std::optional<Wait>> {
      co_await self->Round();
      if (self->options.preflight_interval.count() == 0) co_return std::nullopt;
      co_return Wait(self->options.preflight_interval);
    });
  }
};

Preflight::Preflight(asio::io_context& io, dns::Lookup& resolver, DeliveryOptions options,
                     std::string helo_name, std::shared_ptr<asio::ssl::context> tls_context,
                     std::filesystem::path status_file)
    : impl_(std::make_shared<Impl>(io, resolver, std::move(options), std::move(helo_name),
                                   std::move(tls_context), std::move(status_file))) {}

Preflight::~Preflight() { Stop(); }

void Preflight::Start() { impl_->Start(); }

void Preflight::Stop() { impl_->task.Stop(); }

void Preflight::CheckDkimKeys(std::vector<DkimKeyOptions> keys) {
  impl_->dkim_keys = std::move(keys);
}

void Preflight::Reload(const DeliveryOptions& options, const std::string& helo_name) {
  impl_->options = options;
  impl_->helo_name = helo_name;
  if (impl_->task.running()) {
    impl_->task.Poke();  // check with the new list now
  } else {
    Start();
  }
}

std::string Preflight::MetricsText() const {
  std::string out =
      "# HELP danerelay_dane_preflight_failing Whether mail to a mandatory-DANE domain would be "
      "deferred now (1) or delivered (0), by the last pre-flight check.\n"
      "# TYPE danerelay_dane_preflight_failing gauge\n";
  for (const auto& [domain, fails] : impl_->failing) {
    out += fmt::format("danerelay_dane_preflight_failing{{domain=\"{}\"}} {}\n", domain,
                       fails ? 1 : 0);
  }
  return out;
}

std::vector<std::string> PreflightDomains(const std::vector<std::string>& mandatory_domains) {
  std::vector<std::string> out;
  for (const auto& entry : mandatory_domains) {
    std::string d = LowerAscii(!entry.empty() && entry.front() == '.' ? entry.substr(1) : entry);
    if (!d.empty() && std::find(out.begin(), out.end(), d) == out.end()) out.push_back(d);
  }
  return out;
}

std::filesystem::path PreflightStatusFile(const std::filesystem::path& queue_dir) {
  return queue_dir / "preflight.status";
}

std::vector<std::string> DescribePreflightStatus(const std::filesystem::path& queue_dir,
                                                 int* failing) {
  std::ifstream in(PreflightStatusFile(queue_dir));
  if (!in) return {};
  const auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return {"pre-flight: status file unreadable"};
  std::vector<std::string> out;
  int bad = 0;
  for (const auto& d : j.value("domains", nlohmann::json::array())) {
    if (d.value("ok", false)) {
      out.push_back(fmt::format("pre-flight:  {} ok, via {} (checked {})", d.value("domain", "?"),
                                d.value("via", "?"), j.value("checked", "?")));
      continue;
    }
    ++bad;
    for (const auto& p : d.value("problems", nlohmann::json::array())) {
      out.push_back(fmt::format("pre-flight:  {} WOULD BE DEFERRED: {} (checked {})",
                                d.value("domain", "?"), p.get<std::string>(),
                                j.value("checked", "?")));
    }
  }
  if (failing) *failing = bad;
  return out;
}

}  // namespace danerelay::relay
