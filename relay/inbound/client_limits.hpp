#pragma once
// Who a client is, for the limits on clients outside trusted_networks, and how often it may
// connect (as Postfix's anvil). An IPv6 client usually holds a whole /64, so counting per
// address would give it 2^64 budgets: addresses are grouped by prefix. No Asio; time injected.
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace danerelay::relay {

// The group `address` belongs to, as text: "192.0.2.7" (a /32) or "2001:db8:1:2::/64". An
// IPv4-mapped IPv6 address counts as IPv4. Something unparsable is its own group.
std::string ClientGroup(std::string_view address, int ipv4_prefix, int ipv6_prefix);

// Connections per client group within a fixed window (anvil's rate time unit): Admit() counts
// one and says whether it is within `limit` (0: no limit). Old groups are swept out as the map
// grows, so clients from many addresses cannot make it grow without bound.
class ConnectionRate {
 public:
  using Clock = std::chrono::steady_clock;
  explicit ConnectionRate(std::chrono::seconds window = std::chrono::minutes(1))
      : window_(window) {}
  // The count of `group` in the current window, this connection included; > limit: refused.
  std::uint32_t Admit(const std::string& group, Clock::time_point now);

 private:
  struct Entry {
    std::uint32_t count = 0;
    Clock::time_point since;
  };
  std::chrono::seconds window_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace danerelay::relay
