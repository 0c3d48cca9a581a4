#include "relay/delivery/shaping_status.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fstream>
#include <vector>

#include "relay/delivery/suspension_watch.hpp"

namespace danerelay::relay {
namespace {

// A status file older than this was written by a daemon that is gone (it rewrites the file
// at least every 30 s: delivery_agent.cpp).
constexpr auto kStale = std::chrono::seconds(60);

nlohmann::json BudgetJson(const RateGate::Budget& b) {
  return {{"rate", b.rate}, {"next_free", Utc(b.next)}, {"turns_booked", b.booked}};
}

std::string BudgetText(const char* what, const nlohmann::json& b) {
  return fmt::format("{} {}: next free {}{}", what, b.value("rate", "?"), b.value("next_free", "?"),
                     b.value("turns_booked", 0) > 0
                         ? fmt::format(", {} waiting for booked turns", b.value("turns_booked", 0))
                         : "");
}

}  // namespace

std::filesystem::path ShapingStatusFile(const std::filesystem::path& queue_dir) {
  return queue_dir / "shaping.status";
}

nlohmann::json ShapingStatus(const DestinationSlots& slots, const RateGate& message_rates,
                             const RateGate& connection_rates,
                             const std::map<std::string, std::size_t>& parked,
                             queue::TimePoint now) {
  nlohmann::json sites = nlohmann::json::object();
  nlohmann::json domains = nlohmann::json::object();
  for (const auto& [site, use] : slots.InUse()) {
    sites[site]["connections"] = use.in_use;
    sites[site]["connections_limit"] = use.limit;
    sites[site]["waiting_for_connection"] = use.waiting;
  }
  for (const auto& [site, n] : parked) sites[site]["parked_for_connection"] = n;
  for (const auto& [key, budget] : message_rates.Budgets(now)) {
    // The agent's keys: "site S" or "domain D".
    if (key.starts_with("site ")) sites[key.substr(5)]["message_rate"] = BudgetJson(budget);
    if (key.starts_with("domain ")) domains[key.substr(7)]["message_rate"] = BudgetJson(budget);
  }
  for (const auto& [site, budget] : connection_rates.Budgets(now)) {
    sites[site]["connection_rate"] = BudgetJson(budget);
  }
  return {{"written", Utc(now)},
          {"written_us",
           std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count()},
          {"sites", sites},
          {"domains", domains}};
}

std::string DescribeShapingStatus(const std::filesystem::path& queue_dir, nlohmann::json* as_json) {
  std::ifstream in(ShapingStatusFile(queue_dir));
  if (!in) return "";
  const auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return "shaping: status file unreadable\n";
  const auto sites = j.value("sites", nlohmann::json::object());
  const auto domains = j.value("domains", nlohmann::json::object());
  const auto written = queue::TimePoint(std::chrono::microseconds(j.value("written_us", 0LL)));
  const bool stale = queue::Clock::now() - written > kStale;
  if (as_json) {
    *as_json = j;
    (*as_json)["stale"] = stale;
  }
  if (sites.empty() && domains.empty()) return "";
  std::string out =
      fmt::format("shaping: what danerelayd holds, as of {}{}\n", j.value("written", "?"),
                  stale ? " (STALE: is danerelayd running?)" : "");
  for (const auto& [site, s] : sites.items()) {
    std::vector<std::string> parts;
    if (s.contains("connections")) {
      parts.push_back(fmt::format("{}/{} connections", s.value("connections", 0),
                                  s.value("connections_limit", 0)));
    }
    const auto waiting = s.value("waiting_for_connection", 0) + s.value("parked_for_connection", 0);
    if (waiting > 0) parts.push_back(fmt::format("{} waiting for a connection", waiting));
    if (s.contains("message_rate")) parts.push_back(BudgetText("message_rate", s["message_rate"]));
    if (s.contains("connection_rate")) {
      parts.push_back(BudgetText("connection_rate", s["connection_rate"]));
    }
    out += fmt::format("  site {}: {}\n", site, fmt::join(parts, "; "));
  }
  for (const auto& [domain, d] : domains.items()) {
    out += fmt::format("  domain {}: {}\n", domain, BudgetText("message_rate", d["message_rate"]));
  }
  return out;
}

}  // namespace danerelay::relay
