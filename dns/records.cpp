#include "dns/records.hpp"

#include <fmt/format.h>

namespace danerelay::dns {

std::string TlsaRecord::ToString() const {
  std::string hex;
  for (auto b : data) hex += fmt::format("{:02X}", b);
  return fmt::format("{} {} {} {}", usage, selector, mtype, hex);
}

}  // namespace danerelay::dns
