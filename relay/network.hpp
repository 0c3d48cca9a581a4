#pragma once
// IP networks for access control ("127.0.0.0/8", "::1", "2001:db8::/32").
// No Asio here: config/ links this to validate trusted_networks.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace danerelay::relay {

class IpNetwork {
 public:
  // A bare address is a host network (/32 or /128). Host bits beyond the prefix must be zero,
  // as in Postfix's mynetworks, so that a typo like 10.1.2.3/8 is reported rather than widened.
  static std::optional<IpNetwork> Parse(std::string_view text, std::string* error = nullptr);

  // `address` in text form; an IPv4-mapped IPv6 address (::ffff:192.0.2.1) matches IPv4 networks.
  bool Contains(std::string_view address) const;
  std::string ToString() const;
  int prefix() const { return prefix_; }

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

// One of our own listening sockets.
struct ListenAddress {
  std::string address;  // an IP literal; "0.0.0.0" or "::" listens on every local address
  std::uint16_t port = 0;
};

// Whether a connection to `ip`:`port` would reach one of `listeners`: the same address, or any
// local address (loopback, or one of the host's interfaces) when the listener is a wildcard.
// Delivery must not connect there: the mail would come straight back (a loop).
bool ReachesListener(const std::vector<ListenAddress>& listeners, std::string_view ip,
                     std::uint16_t port);

// What a DNS blocklist's A records say (RFC 5782 §2.1, §5): listed is an address in
// 127.0.0.0/8; 127.255.255.0/24 are the lists' error codes (Spamhaus: query refused, over quota)
// and an address outside 127/8 is no list answer at all (a wildcard of a lapsed list domain):
// both are errors, which list nobody.
enum class DnsblAnswer { kNotListed, kListed, kError };
DnsblAnswer JudgeDnsbl(const std::vector<std::string>& addresses);

// A next hop from [routes]: "[mx.example.net]:2525" (that host, no MX lookup), "mx.example.net"
// or "relay.example.net:587" (the MX hosts of that name, as Postfix reads an unbracketed
// relayhost), "[192.0.2.1]".
struct RouteHost {
  std::string host;
  std::uint16_t port = 0;  // 0: the default delivery port
  bool ip_literal = false;
  bool mx_lookup = false;  // not in brackets and not an address
};
std::optional<RouteHost> ParseRoute(std::string_view text);

// Domain names compare case-insensitively (RFC 4343); this lowers ASCII letters only.
std::string LowerAscii(std::string_view text);

}  // namespace danerelay::relay
