// Fuzz target: the SMTP reply parser as the client reads a server (relay/smtp/smtp_reply.cpp),
// fed in chunks chosen by the input. Invariant: reply text is safe for logs and notices.
#include <cstdint>

#include "relay/smtp/smtp_reply.hpp"
#include "tests/fuzz/fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  danerelay::fuzz::Input in(data, size);
  const std::size_t chunk = 1 + in.Byte() % 64;
  const std::string_view bytes = in.Rest();
  danerelay::relay::ReplyParser parser;
  for (std::size_t pos = 0; pos < bytes.size(); pos += chunk) {
    parser.Feed(bytes.substr(pos, chunk));
    while (auto r = parser.Next()) {
      if (!*r) return 0;  // malformed: the connection would be dropped
      const auto& reply = **r;
      if (reply.code < 200 || reply.code > 599) danerelay::fuzz::Violated("reply code", bytes);
      for (const auto& line : reply.lines) {
        for (char c : line) {
          if (c < 32 || c > 126) danerelay::fuzz::Violated("reply text not printable", bytes);
        }
      }
      (void)reply.HasExtension("STARTTLS");
      (void)reply.Text();
    }
  }
  return 0;
}
