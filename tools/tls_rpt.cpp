#include "tools/tls_rpt.hpp"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <chrono>
#include <ctime>

#include "dns/idn.hpp"
#include "queue/store.hpp"
#include "relay/outbound/tls_report.hpp"

namespace danerelay::tools {
namespace {

// "2026-12-02" -> its 00:00 UTC; none for anything else.
std::optional<queue::TimePoint> ParseDay(const std::string& text) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%Y-%m-%d", &tm);
  if (!end || *end != '\0') return std::nullopt;
  return queue::TimePoint(std::chrono::seconds(timegm(&tm)));
}

}  // namespace

int RunTlsRptPreview(const config::Config& config, const std::string& given_domain,
                     const std::string& date, std::ostream& out, std::ostream& err) {
  const auto now = std::chrono::time_point_cast<std::chrono::seconds>(queue::Clock::now());
  const auto today = now - std::chrono::seconds(now.time_since_epoch().count() % 86400);
  std::optional<queue::TimePoint> day = date.empty() ? std::optional(today) : ParseDay(date);
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
  relay::TlsReportHeader header;
  header.hostname = config.server.hostname;
  header.organization = config.delivery.tls_rpt.organization.empty()
                            ? config.server.hostname
                            : config.delivery.tls_rpt.organization;
  header.contact = config.delivery.tls_rpt.contact.empty() ? "postmaster@" + config.server.hostname
                                                           : config.delivery.tls_rpt.contact;
  const auto report =
      relay::BuildTlsReport(*domain, *day, *sessions, *policy ? (*policy)->policy : "", header);
  out << report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return 0;
}

}  // namespace danerelay::tools
