#include "dns/dnssec.hpp"

namespace danerelay::dns {

std::string_view ToString(DnssecState state) {
  switch (state) {
    case DnssecState::kSecure:
      return "secure";
    case DnssecState::kInsecure:
      return "insecure";
    case DnssecState::kBogus:
      return "bogus";
    case DnssecState::kFailed:
      return "failed";
  }
  return "unknown";
}

}  // namespace danerelay::dns
