#pragma once
// IP networks for access control ("127.0.0.0/8", "::1", "2001:db8::/32").
// No Asio here: config/ links this to validate trusted_networks.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace danerelay::relay {

class IpNetwork {
 public:
  // A bare address is a host network (/32 or /128). Host bits beyond the prefix must be zero,
  // as in Postfix's mynetworks, so that a typo like 10.1.2.3/8 is reported rather than widened.
  static std::optional<IpNetwork> Parse(std::string_view text, std::string* error = nullptr);

  // `address` in text form; an IPv4-mapped IPv6 address (::ffff:192.0.2.1) matches IPv4 networks.
  bool Contains(std::string_view address) const;
  std::string ToString() const;

 private:
  bool v4_ = false;
  std::array<std::uint8_t, 16> bytes_{};
  int prefix_ = 0;
};

// Whether `address` is not globally routed, after the IANA IPv4 and IPv6 Special-Purpose
// Address Registries (RFC 6890 and successors): the name of its block ("loopback",
// "private-use", "shared address space (CGNAT)", "documentation", ...), or nullopt for a global
// address. An unparsable address counts as special ("not an IP address").
std::optional<std::string_view> SpecialPurpose(std::string_view address);

// A next hop from [routes]: "[mx.example.net]:2525", "mx.example.net", "[192.0.2.1]".
struct Route {
  std::string host;
  std::uint16_t port = 0;  // 0: the default delivery port
  bool ip_literal = false;
};
std::optional<Route> ParseRoute(std::string_view text);

// Domain names compare case-insensitively (RFC 4343); this lowers ASCII letters only.
std::string LowerAscii(std::string_view text);

}  // namespace danerelay::relay
