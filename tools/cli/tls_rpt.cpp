#include "tools/cli/tls_rpt.hpp"

#include <nlohmann/json.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <chrono>
#include <ctime>

#include "dns/idn.hpp"
#include "queue/store.hpp"
#include "relay/tlsrpt/tls_report.hpp"

namespace danerelay::tools {
namespace {

// "2026-12-02" -> its 00:00 UTC; none for anything else.
std::optional<queue::TimePoint> ParseDay(const std::string& text) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%Y-%m-%d", &tm);
  if (!end || *end != '\0') return std::nullopt;
  return queue::TimePoint(std::chrono::seconds(timegm(&tm)));
}

queue::TimePoint Today() {
  const auto now = std::chrono::time_point_cast<std::chrono::seconds>(queue::Clock::now());
  return now - std::chrono::seconds(now.time_since_epoch().count() % 86400);
}

}  // namespace

int RunTlsRptPreview(const config::Config& config, const std::string& given_domain,
                     const std::string& date, std::ostream& out, std::ostream& err) {
  std::optional<queue::TimePoint> day = date.empty() ? std::optional(Today()) : ParseDay(date);
  if (!day) {
    err << "danerelay: --date: expected YYYY-MM-DD, got '" << date << "'\n";
    return 64;
  }
  const auto domain = dns::ToAsciiDomain(given_domain);
  if (!domain) {
    err << "danerelay: " << given_domain << " is " << domain.error() << "\n";
    return 64;
  }
  auto store = queue::Store::Open(config.queue, queue::OpenMode::kReadOnly);
  if (!store) {
    err << "danerelay: " << store.error().message << "\n";
    return 2;
  }
  auto sessions = (*store)->GetDomainSessions(*domain, *day, *day + std::chrono::hours(24));
  auto policy = (*store)->GetStsPolicy(*domain);
  if (!sessions || !policy) {
    err << "danerelay: " << (!sessions ? sessions.error() : policy.error()).message << "\n";
    return 2;
  }
  const auto header = relay::MakeTlsReportHeader(config.delivery.tls_rpt, config.server.hostname);
  const auto report =
      relay::BuildTlsReport(*domain, *day, *sessions, *policy ? (*policy)->policy : "", header);
  out << report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return 0;
}

int RunTlsRptList(const config::Config& config, const std::string& date, std::ostream& out,
                  std::ostream& err) {
  std::optional<queue::TimePoint> day =
      date.empty() ? std::optional(Today() - std::chrono::hours(24)) : ParseDay(date);
  if (!day) {
    err << "danerelay: --date: expected YYYY-MM-DD, got '" << date << "'\n";
    return 64;
  }
  auto store = queue::Store::Open(config.queue, queue::OpenMode::kReadOnly);
  if (!store) {
    err << "danerelay: " << store.error().message << "\n";
    return 2;
  }
  auto reports = (*store)->GetTlsReports(*day);
  if (!reports) {
    err << "danerelay: " << reports.error().message << "\n";
    return 2;
  }
  const auto day_s = std::chrono::time_point_cast<std::chrono::seconds>(*day);
  if (reports->empty()) {
    out << fmt::format("no TLS-RPT reports for {:%Y-%m-%d}{}\n", day_s,
                       config.delivery.tls_rpt.enabled ? "" : " ([tls_rpt] enabled = false)");
    return 0;
  }
  auto posts = (*store)->GetTlsReportPosts(*day);
  if (!posts) {
    err << "danerelay: " << posts.error().message << "\n";
    return 2;
  }
  for (const auto& r : *reports) {
    out << fmt::format("{}  {}  made {}\n  to: {}\n", r.domain,
                       r.report_id.empty() ? "-" : r.report_id, queue::FormatRfc5322Date(r.made),
                       r.rua.empty() ? "-" : r.rua);
    if (!r.outcome.empty()) out << "  " << r.outcome << "\n";
    for (const auto& p : *posts) {
      if (p.domain != r.domain) continue;
      const std::string tries = relay::Tries(p.tries);
      if (p.state == "posted") {
        out << fmt::format("  posted to {} ({})\n", p.url, tries);
      } else if (p.state == "failed") {
        out << fmt::format("  not posted to {}: {} (given up after {})\n", p.url, p.last_error,
                           tries);
      } else {
        out << fmt::format(
            "  to be posted to {}: next try {}{}\n", p.url, queue::FormatRfc5322Date(p.next),
            p.tries ? fmt::format(" ({} so far; last: {})", tries, p.last_error) : "");
      }
    }
  }
  return 0;
}

}  // namespace danerelay::tools
