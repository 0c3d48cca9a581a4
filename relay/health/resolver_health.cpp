#include "relay/health/resolver_health.hpp"

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
#include "relay/health/status_file.hpp"
#include "relay/io/connection.hpp"
#include "relay/io/periodic_task.hpp"

namespace danerelay::relay {

struct ResolverHealth::Impl : std::enable_shared_from_this<Impl> {
  asio::io_context& io;
  dns::Lookup& resolver;
  dns::ResolverOptions options;
  std::filesystem::path status_file;
  PeriodicTask task;
  bool works = true;
  bool checked = false;
  std::string problem;
  queue::TimePoint since{};  // when it last changed
  std::function<void()> on_recovered;
  // The pause after a failed check: kFirstRetry, doubled after each further failure, never
  // longer than health_interval.
  static constexpr std::chrono::seconds kFirstRetry{5};
  std::chrono::seconds retry_after = kFirstRetry;

  Impl(asio::io_context& i, dns::Lookup& r, dns::ResolverOptions o, std::filesystem::path f)
      : io(i),
        resolver(r),
        options(std::move(o)),
        status_file(std::move(f)),
        task(i, "the resolver self-check") {}

  // One check: "" when validation works, else what went wrong.
  asio::awaitable<std::string> Check() {
    const std::string canary = options.validation_canary;
    const int type = canary == "." ? dns::Lookup::kTypeDnskey : dns::Lookup::kTypeA;
    const dns::Answer a = co_await resolver.LookupAny(canary, type);
    if (a.dnssec != dns::DnssecState::kSecure) {
      co_return fmt::format("{} {} came back {}{}", canary, canary == "." ? "DNSKEY" : "A",
                            dns::ToString(a.dnssec), a.why.empty() ? "" : " (" + a.why + ")");
    }
    if (!options.bogus_canary.empty()) {
      const std::string bogus = options.bogus_canary;
      const dns::Answer b = co_await resolver.LookupAny(bogus, dns::Lookup::kTypeA);
      if (b.dnssec != dns::DnssecState::kBogus) {
        co_return fmt::format("{} A should fail validation but came back {}", bogus,
                              dns::ToString(b.dnssec));
      }
    }
    co_return "";
  }

  void WriteStatus() const {
    const nlohmann::json j = {
        {"validation_ok", works},
        {"problem", problem},
        {"since", queue::FormatRfc5322Date(since)},
        {"checked", queue::FormatRfc5322Date(queue::Clock::now())},
        {"canary", options.validation_canary},
        {"deliver_anyway", options.deliver_on_validation_failure},
    };
    WriteStatusFile(status_file, j, "resolver check");
  }

  // One check, its consequences, and the wait before the next: health_interval after a good
  // one, kFirstRetry doubling up to health_interval after failures.
  asio::awaitable<std::optional<std::chrono::steady_clock::duration>> Round() {
    const std::string found = co_await Check();
    if (task.stopping()) co_return std::nullopt;
    const bool ok = found.empty();
    Metrics::Get().Add("danerelay_resolver_checks_total",
                       ok ? "result=\"ok\"" : "result=\"failed\"");
    if (!ok) {
      spdlog::error("DNSSEC validation is not working: {}; {}", found,
                    options.deliver_on_validation_failure
                        ? "delivering without DANE to domains not under mandatory DANE "
                          "(on_validation_failure = \"deliver\")"
                        : "deferring every delivery until it works again");
    } else if (!works) {
      spdlog::info("DNSSEC validation works again ({} validates); deliveries resume",
                   options.validation_canary);
    }
    const bool recovered = ok && !works;
    if (ok != works || !checked) since = queue::Clock::now();
    works = ok;
    checked = true;
    problem = found;
    WriteStatus();
    if (recovered && on_recovered) on_recovered();
    const std::chrono::seconds interval = options.health_interval;
    if (ok) {
      retry_after = kFirstRetry;
      co_return interval;
    }
    const auto wait = std::min(retry_after, interval);
    retry_after = std::min(retry_after * 2, std::max(interval, kFirstRetry));
    co_return wait;
  }
};

ResolverHealth::ResolverHealth(asio::io_context& io, dns::Lookup& resolver,
                               dns::ResolverOptions options, std::filesystem::path status_file)
    : impl_(std::make_shared<Impl>(io, resolver, std::move(options), std::move(status_file))) {}

ResolverHealth::~ResolverHealth() { Stop(); }

void ResolverHealth::Start() {
  if (impl_->options.validation_canary.empty()) {
    spdlog::warn("the resolver's DNSSEC self-check is off ([dns] validation_canary = \"\")");
    return;
  }
  impl_->task.Start([self = impl_] { return self->Round(); });
}

void ResolverHealth::Stop() { impl_->task.Stop(); }

void ResolverHealth::Reload(const dns::ResolverOptions& options) {
  impl_->options.validation_canary = options.validation_canary;
  impl_->options.bogus_canary = options.bogus_canary;
  impl_->options.health_interval = options.health_interval;
  impl_->options.deliver_on_validation_failure = options.deliver_on_validation_failure;
  impl_->task.Poke();  // check with the new settings now
}

void ResolverHealth::OnRecovered(std::function<void()> callback) {
  impl_->on_recovered = std::move(callback);
}

bool ResolverHealth::ValidationWorks() const { return impl_->works; }
std::string ResolverHealth::Problem() const { return impl_->problem; }
bool ResolverHealth::DeliverAnyway() const { return impl_->options.deliver_on_validation_failure; }

std::string ResolverHealth::MetricsText() const {
  return fmt::format(
      "# HELP danerelay_resolver_validation_ok Whether the last DNSSEC self-check of the "
      "resolver passed (1) or failed (0).\n# TYPE danerelay_resolver_validation_ok gauge\n"
      "danerelay_resolver_validation_ok {}\n",
      impl_->works ? 1 : 0);
}

std::filesystem::path ResolverStatusFile(const std::filesystem::path& queue_dir) {
  return queue_dir / "resolver.status";
}

std::string DescribeResolverStatus(const std::filesystem::path& queue_dir, bool* ok) {
  std::ifstream in(ResolverStatusFile(queue_dir));
  if (!in) return "";
  const auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return "resolver: status file unreadable";
  const bool works = j.value("validation_ok", false);
  if (ok) *ok = works;
  if (works) {
    return fmt::format("resolver:    DNSSEC validation works ({} secure; checked {})",
                       j.value("canary", "?"), j.value("checked", "?"));
  }
  return fmt::format("resolver:    DNSSEC VALIDATION IS NOT WORKING since {}: {} (checked {}); {}",
                     j.value("since", "?"), j.value("problem", "?"), j.value("checked", "?"),
                     j.value("deliver_anyway", false)
                         ? "delivering without DANE except to mandatory-DANE domains"
                         : "deliveries are deferred");
}

}  // namespace danerelay::relay
