#include "relay/network.hpp"

#include <algorithm>
#include <vector>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <charconv>
#include <cstdint>
#include <cstring>

namespace danerelay::relay {
namespace {

struct Address {
  bool v4 = false;
  std::array<std::uint8_t, 16> bytes{};
};

std::optional<Address> ParseAddress(std::string_view text) {
  const std::string s(text);
  Address a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
    a.v4 = true;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
    static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(a.bytes.data(), kMapped, sizeof kMapped) == 0) {
      std::memmove(a.bytes.data(), a.bytes.data() + 12, 4);
      std::memset(a.bytes.data() + 4, 0, 12);
      a.v4 = true;
    }
    return a;
  }
  return std::nullopt;
}

bool BitSet(const std::array<std::uint8_t, 16>& b, int bit) {
  return (b[static_cast<size_t>(bit / 8)] >> (7 - bit % 8)) & 1;
}

}  // namespace

std::optional<IpNetwork> IpNetwork::Parse(std::string_view text, std::string* error) {
  auto fail = [&](std::string why) -> std::optional<IpNetwork> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  const auto slash = text.find('/');
  const auto addr = ParseAddress(text.substr(0, slash));
  if (!addr) return fail("'" + std::string(text) + "' is not an IP address or network");
  IpNetwork n;
  n.v4_ = addr->v4;
  n.bytes_ = addr->bytes;
  const int max_prefix = n.v4_ ? 32 : 128;
  n.prefix_ = max_prefix;
  if (slash != std::string_view::npos) {
    const std::string_view p = text.substr(slash + 1);
    int prefix = -1;
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (ec != std::errc() || end != p.data() + p.size() || prefix < 0 || prefix > max_prefix) {
      return fail("'" + std::string(text) + "': prefix length must be 0.." +
                  std::to_string(max_prefix));
    }
    n.prefix_ = prefix;
  }
  for (int bit = n.prefix_; bit < max_prefix; ++bit) {
    if (BitSet(n.bytes_, bit)) {
      return fail("'" + std::string(text) + "' has host bits set beyond /" +
                  std::to_string(n.prefix_));
    }
  }
  return n;
}

bool IpNetwork::Contains(std::string_view address) const {
  const auto a = ParseAddress(address);
  if (!a || a->v4 != v4_) return false;
  for (int bit = 0; bit < prefix_; ++bit) {
    if (BitSet(a->bytes, bit) != BitSet(bytes_, bit)) return false;
  }
  return true;
}

std::string IpNetwork::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(v4_ ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(prefix_);
}

std::optional<std::string_view> SpecialPurpose(std::string_view address) {
  // Blocks that are not "globally reachable" in the registries (AS112 and AMT anycast blocks
  // are, so they are not listed).
  struct Block {
    const char* network;
    const char* name;
  };
  static const Block kBlocks[] = {
      {"0.0.0.0/8", "this network"},
      {"10.0.0.0/8", "private-use"},
      {"100.64.0.0/10", "shared address space (CGNAT)"},
      {"127.0.0.0/8", "loopback"},
      {"169.254.0.0/16", "link-local"},
      {"172.16.0.0/12", "private-use"},
      {"192.0.0.0/24", "IETF protocol assignments"},
      {"192.0.2.0/24", "documentation"},
      {"192.88.99.0/24", "deprecated 6to4 relay anycast"},
      {"192.168.0.0/16", "private-use"},
      {"198.18.0.0/15", "benchmarking"},
      {"198.51.100.0/24", "documentation"},
      {"203.0.113.0/24", "documentation"},
      {"224.0.0.0/4", "multicast"},
      {"255.255.255.255/32", "limited broadcast"},  // before 240.0.0.0/4, which holds it
      {"240.0.0.0/4", "reserved"},
      {"::/128", "unspecified"},
      {"::1/128", "loopback"},
      {"64:ff9b:1::/48", "local-use IPv4/IPv6 translation"},
      {"100::/64", "discard-only"},
      {"2001::/23", "IETF protocol assignments"},
      {"2001:db8::/32", "documentation"},
      {"2002::/16", "6to4"},
      {"3fff::/20", "documentation"},
      {"5f00::/16", "segment routing (SRv6) SIDs"},
      {"fc00::/7", "unique-local"},
      {"fe80::/10", "link-local"},
      {"ff00::/8", "multicast"},
  };
  static const auto kNetworks = [] {
    std::vector<std::pair<IpNetwork, std::string_view>> out;
    for (const auto& b : kBlocks) out.emplace_back(*IpNetwork::Parse(b.network), b.name);
    return out;
  }();
  if (!IpNetwork::Parse(address)) return "not an IP address";
  for (const auto& [net, name] : kNetworks) {
    if (net.Contains(address)) return name;
  }
  return std::nullopt;
}

namespace {

bool SameAddress(const Address& a, const Address& b) { return a.v4 == b.v4 && a.bytes == b.bytes; }

bool Unspecified(const Address& a) {
  return std::all_of(a.bytes.begin(), a.bytes.end(), [](std::uint8_t b) { return b == 0; });
}

// 127.0.0.0/8 and ::1 are local without being on an interface list (Linux answers the whole
// block on lo); anything else must be an address of one of the host's interfaces.
bool IsLocal(const Address& a) {
  if (Unspecified(a)) return true;  // connecting to 0.0.0.0 or :: reaches the host itself
  if (a.v4 && a.bytes[0] == 127) return true;
  if (!a.v4 && std::all_of(a.bytes.begin(), a.bytes.begin() + 15, [](auto b) { return b == 0; }) &&
      a.bytes[15] == 1) {
    return true;
  }
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return false;
  bool found = false;
  for (const ifaddrs* i = list; i && !found; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    Address mine;
    if (i->ifa_addr->sa_family == AF_INET) {
      mine.v4 = true;
      const auto* in = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
      std::memcpy(mine.bytes.data(), &in->sin_addr, 4);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
      std::memcpy(mine.bytes.data(), &in6->sin6_addr, 16);
    } else {
      continue;
    }
    found = SameAddress(mine, a);
  }
  freeifaddrs(list);
  return found;
}

}  // namespace

bool ReachesListener(const std::vector<ListenAddress>& listeners, std::string_view ip,
                     std::uint16_t port) {
  const auto target = ParseAddress(ip);
  if (!target) return false;
  for (const auto& l : listeners) {
    if (l.port != port) continue;
    const auto mine = ParseAddress(l.address);
    if (!mine) continue;
    if (Unspecified(*mine) ? IsLocal(*target) : SameAddress(*mine, *target)) return true;
  }
  return false;
}

DnsblAnswer JudgeDnsbl(const std::vector<std::string>& addresses) {
  DnsblAnswer out = DnsblAnswer::kNotListed;
  for (const auto& text : addresses) {
    const auto a = ParseAddress(text);
    const bool loopback = a && a->v4 && a->bytes[0] == 127;
    const bool error_code = loopback && a->bytes[1] == 255 && a->bytes[2] == 255;
    if (loopback && !error_code) return DnsblAnswer::kListed;
    out = DnsblAnswer::kError;
  }
  return out;
}

std::string LowerAscii(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::optional<RouteHost> ParseRoute(std::string_view text) {
  RouteHost r;
  std::string_view rest = text;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos || close == 1) return std::nullopt;
    r.host = std::string(rest.substr(1, close - 1));
    rest.remove_prefix(close + 1);
  } else {
    const auto colon = rest.rfind(':');
    r.host = std::string(rest.substr(0, colon));
    rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon);
  }
  if (!rest.empty()) {
    if (rest.front() != ':') return std::nullopt;
    rest.remove_prefix(1);
    unsigned port = 0;
    auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), port);
    if (ec != std::errc() || end != rest.data() + rest.size() || port == 0 || port > 65535) {
      return std::nullopt;
    }
    r.port = static_cast<std::uint16_t>(port);
  }
  if (r.host.empty() || r.host.find_first_of(" /") != std::string::npos) return std::nullopt;
  r.ip_literal = ParseAddress(r.host).has_value();
  r.mx_lookup = text.front() != '[' && !r.ip_literal;
  return r;
}

}  // namespace danerelay::relay
