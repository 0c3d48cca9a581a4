#include "dns/records.hpp"

#include <fmt/format.h>

namespace danerelay::dns {

std::string TlsaRecord::ToString() const {
  std::string hex;
  for (auto b : data) hex += fmt::format("{:02X}", b);
  return fmt::format("{} {} {} {}", usage, selector, mtype, hex);
}

std::optional<std::string> NameFromWire(const unsigned char* p, std::size_t len, std::size_t& pos) {
  std::string out;
  while (pos < len) {
    const std::size_t label = p[pos++];
    if (label == 0) return out;
    if (label > 63 || pos + label > len) return std::nullopt;
    if (!out.empty()) out += '.';
    for (std::size_t i = 0; i < label; ++i) {
      const unsigned char c = p[pos + i];
      if (c == '.' || c == '\\') {
        out += '\\';
        out += static_cast<char>(c);
      } else if (c <= 0x20 || c >= 0x7f) {
        out += fmt::format("\\{:03d}", c);
      } else {
        out += static_cast<char>(c);
      }
    }
    pos += label;
  }
  return std::nullopt;
}

}  // namespace danerelay::dns
