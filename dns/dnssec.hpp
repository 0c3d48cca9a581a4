#pragma once
// DNSSEC facts that travel with every DNS answer (design.md: "secure | insecure | bogus | failed").
//
// This header is all of dns/ so far: the libunbound resolver arrives with the delivery issue.
// The queue's attempt records already speak these words.
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
