#include "relay/inbound/client_limits.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace danerelay::relay {
namespace {

// Clears the bits of `bytes` past `prefix`.
template <size_t N>
void Mask(std::array<unsigned char, N>& bytes, int prefix) {
  for (size_t i = 0; i < N; ++i) {
    const int keep = std::min(8, std::max(0, prefix - static_cast<int>(i) * 8));
    bytes[i] &= static_cast<unsigned char>(0xff00u >> keep);
  }
}

}  // namespace

std::string ClientGroup(std::string_view address, int ipv4_prefix, int ipv6_prefix) {
  const std::string text(address);
  std::array<unsigned char, 4> v4{};
  std::array<unsigned char, 16> v6{};
  int prefix = 0;
  if (inet_pton(AF_INET6, text.c_str(), v6.data()) == 1) {
    static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(v6.data(), kMapped, sizeof kMapped) != 0) {
      Mask(v6, ipv6_prefix);
      char out[INET6_ADDRSTRLEN];
      inet_ntop(AF_INET6, v6.data(), out, sizeof out);
      return ipv6_prefix >= 128 ? std::string(out) : out + ("/" + std::to_string(ipv6_prefix));
    }
    std::memcpy(v4.data(), v6.data() + 12, 4);
  } else if (inet_pton(AF_INET, text.c_str(), v4.data()) != 1) {
    return text;
  }
  prefix = ipv4_prefix;
  Mask(v4, prefix);
  char out[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, v4.data(), out, sizeof out);
  return prefix >= 32 ? std::string(out) : out + ("/" + std::to_string(prefix));
}

std::uint32_t ConnectionRate::Admit(const std::string& group, Clock::time_point now) {
  if (entries_.size() > 10000) {
    std::erase_if(entries_, [&](const auto& e) { return now - e.second.since >= window_; });
  }
  Entry& e = entries_[group];
  if (e.count == 0 || now - e.since >= window_) e = Entry{0, now};
  return ++e.count;
}

}  // namespace danerelay::relay
