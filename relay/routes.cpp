#include "relay/routes.hpp"

#include <algorithm>
#include <array>
#include <utility>

namespace danerelay::relay {
namespace {

constexpr std::array<std::pair<TlsPolicy, std::string_view>, 7> kPolicies{{
    {TlsPolicy::kDane, "dane"},
    {TlsPolicy::kDaneOnly, "dane-only"},
    {TlsPolicy::kVerify, "verify"},
    {TlsPolicy::kFingerprint, "fingerprint"},
    {TlsPolicy::kEncrypt, "encrypt"},
    {TlsPolicy::kMay, "may"},
    {TlsPolicy::kNone, "none"},
}};

bool IsIpv6(const std::string& ip) { return ip.find(':') != std::string::npos; }

}  // namespace

std::optional<TlsPolicy> ParseTlsPolicy(std::string_view text) {
  for (const auto& [policy, name] : kPolicies) {
    if (name == text) return policy;
  }
  return std::nullopt;
}

std::string_view ToString(TlsPolicy policy) {
  for (const auto& [p, name] : kPolicies) {
    if (p == policy) return name;
  }
  return "?";
}

bool Authenticates(TlsPolicy policy) {
  return policy == TlsPolicy::kVerify || policy == TlsPolicy::kFingerprint;
}

std::optional<AddressPreference> ParseAddressPreference(std::string_view text) {
  if (text == "any") return AddressPreference::kAny;
  if (text == "ipv4") return AddressPreference::kIpv4;
  if (text == "ipv6") return AddressPreference::kIpv6;
  return std::nullopt;
}

std::vector<std::string> OrderAddresses(std::vector<std::string> addresses,
                                        const SourceOptions& source) {
  std::erase_if(addresses,
                [&](const std::string& ip) { return IsIpv6(ip) ? !source.ipv6 : !source.ipv4; });
  if (source.preference == AddressPreference::kIpv6) {
    std::stable_partition(addresses.begin(), addresses.end(), IsIpv6);
  } else if (source.preference == AddressPreference::kIpv4) {
    std::stable_partition(addresses.begin(), addresses.end(),
                          [](const std::string& ip) { return !IsIpv6(ip); });
  }
  return addresses;
}

const Route* FindRoute(const Routes& routes, std::string_view sender, std::string_view domain) {
  if (!sender.empty()) {
    const std::string lower = LowerAscii(sender);
    if (auto it = routes.by_sender.find(lower); it != routes.by_sender.end()) return &it->second;
    if (const auto at = lower.rfind('@'); at != std::string::npos) {
      if (auto it = routes.by_sender.find(lower.substr(at)); it != routes.by_sender.end()) {
        return &it->second;
      }
    }
  }
  return MostSpecific(routes.by_domain, LowerAscii(domain), /*star=*/true);
}

const TlsSettings* FindTlsPolicy(const Routes& routes, std::string_view domain) {
  return MostSpecific(routes.tls_policy, LowerAscii(domain), /*star=*/false);
}

}  // namespace danerelay::relay
