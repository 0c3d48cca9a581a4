#pragma once
// DNSSEC facts that travel with every DNS answer (relay/DESIGN.md: "secure | insecure | bogus |
// failed"). The queue's attempt records store them by these names.
#include <string_view>

namespace danerelay::dns {

enum class DnssecState {
  kSecure,    // validated chain of trust from the configured anchor
  kInsecure,  // provably unsigned (no DS at a delegation)
  kBogus,     // signatures present but validation failed
  kFailed,    // no usable answer: SERVFAIL, timeout
};

std::string_view ToString(DnssecState state);

}  // namespace danerelay::dns
