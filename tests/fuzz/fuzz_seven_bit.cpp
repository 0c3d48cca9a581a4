// Fuzz target: the 8BITMIME-to-7bit conversion (relay/delivery/seven_bit.cpp), on a message as
// the queue stores it: every line ends in CRLF, the last one too (the input's bare CR and LF
// become CRLF, and a CRLF ends it; the SMTP server stores only whole CRLF lines). Invariants
// when it converts: the result is 7-bit with CRLF line ends, no line of it is longer than 998
// octets or the longest line of the original, and GMime reads the same decoded leaf contents
// from it as from the original (nothing lost, moved or doubled by the splice).
#include <algorithm>
#include <cstdint>
#include <string>

#include "relay/delivery/mime_leaves_test_util.hpp"
#include "relay/delivery/seven_bit.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

using danerelay::fuzz::Violated;

std::string Crlf(std::string_view in) {
  std::string out;
  out.reserve(in.size() + in.size() / 8);
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\r' || in[i] == '\n') {
      out += "\r\n";
      if (in[i] == '\r' && i + 1 < in.size() && in[i + 1] == '\n') ++i;
    } else {
      out += in[i];
    }
  }
  if (!out.empty() && !out.ends_with("\r\n")) out += "\r\n";
  return out;
}

size_t LongestLine(std::string_view s) {
  size_t longest = 0;
  for (size_t at = 0; at < s.size();) {
    const size_t end = std::min(s.find("\r\n", at), s.size());
    longest = std::max(longest, end - at);
    at = end + 2;
  }
  return longest;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string message = Crlf(std::string_view(reinterpret_cast<const char*>(data), size));
  const auto r = danerelay::relay::ToSevenBit(message);
  if (!r || !*r) return 0;  // refused, or nothing to convert
  const std::string& out = **r;
  if (danerelay::relay::HasEightBit(out)) Violated("8-bit octets left", out);
  if (!danerelay::fuzz::OnlyCrlf(out)) Violated("line ends other than CRLF", out);
  if (LongestLine(out) > std::max<size_t>(998, LongestLine(message))) {
    Violated("a line longer than 998 octets and than the original's", out);
  }
  if (danerelay::relay::Leaves(out) != danerelay::relay::Leaves(message)) {
    Violated("the decoded parts differ from the original's", out);
  }
  return 0;
}
