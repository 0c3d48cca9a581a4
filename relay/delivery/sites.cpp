#include "relay/delivery/sites.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace danerelay::relay {
namespace {

bool EveryHostEndsWithOneOf(const std::vector<std::string>& hosts,
                            const std::vector<std::string>& suffixes) {
  return std::all_of(hosts.begin(), hosts.end(), [&](const std::string& h) {
    return std::any_of(suffixes.begin(), suffixes.end(),
                       [&](const std::string& s) { return h.ends_with(s); });
  });
}

}  // namespace

const std::vector<SiteProvider>& ShippedProviders() {
  // The MX hosts of each provider's hosted domains (their admin documentation).
  static const std::vector<SiteProvider> kShipped = {
      {"google", {".google.com", ".googlemail.com"}},    // Google Workspace, Gmail
      {"microsoft", {".mail.protection.outlook.com"}},   // Microsoft 365 (Exchange Online)
      {"outlook.com", {".olc.protection.outlook.com"}},  // outlook.com, hotmail.com
      {"yahoo", {".yahoodns.net"}},                      // Yahoo, AOL
  };
  return kShipped;
}

std::string SiteOfMx(std::vector<std::string> mx_hosts, const std::vector<SiteProvider>& own) {
  for (auto& h : mx_hosts) {
    h = LowerAscii(h);
    if (!h.empty() && h.back() == '.') h.pop_back();
  }
  std::erase(mx_hosts, std::string());
  if (mx_hosts.empty()) return "";
  for (const auto* list : {&own, &ShippedProviders()}) {
    for (const auto& p : *list) {
      if (EveryHostEndsWithOneOf(mx_hosts, p.suffixes)) return p.name;
    }
  }
  std::sort(mx_hosts.begin(), mx_hosts.end());
  mx_hosts.erase(std::unique(mx_hosts.begin(), mx_hosts.end()), mx_hosts.end());
  return fmt::format("{}", fmt::join(mx_hosts, ","));
}

std::string SiteOfRoute(const Route& route) {
  std::vector<std::string> hops;
  for (const auto& h : route.hosts) {
    hops.push_back(h.mx_lookup ? h.host : fmt::format("[{}]", h.host));
    if (h.port != 0) hops.back() += fmt::format(":{}", h.port);
  }
  return "route " + fmt::format("{}", fmt::join(hops, ","));
}

bool IsProviderSite(const std::string& site, const std::vector<SiteProvider>& own) {
  for (const auto* list : {&own, &ShippedProviders()}) {
    for (const auto& p : *list) {
      if (p.name == site) return true;
    }
  }
  return false;
}

std::uint32_t MessagesPerConnection(const DeliveryOptions& options, const std::string& site) {
  const auto it = options.site_shaping.find(site);
  if (it == options.site_shaping.end() || !it->second.messages_per_connection) {
    return options.messages_per_connection;
  }
  return *it->second.messages_per_connection;
}

}  // namespace danerelay::relay
