// Fuzz target: the SMTP command parser, MAIL/RCPT arguments, xtext and address syntax
// (relay/smtp/smtp_command.cpp). Invariants: what is accepted is what a later stage can trust.
#include <cstdint>

#include "relay/smtp/smtp_command.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

using danerelay::fuzz::Violated;

bool Printable(std::string_view s) {
  for (char c : s) {
    if (c < 32 || c > 126) return false;
  }
  return true;
}

// A stored ORCPT, "type;address": printable ASCII, except the address of the utf-8 type
// (RFC 6533 §3), which is well-formed UTF-8 without controls. It ends up in DSNs.
bool OrcptSafe(std::string_view orcpt) {
  const auto semi = orcpt.find(';');
  if (orcpt.empty()) return true;
  if (semi == std::string_view::npos) return false;
  const std::string_view type = orcpt.substr(0, semi), address = orcpt.substr(semi + 1);
  if (!Printable(type)) return false;
  const bool utf8 = type.size() == 5 && (type[0] | 0x20) == 'u' && (type[1] | 0x20) == 't' &&
                    (type[2] | 0x20) == 'f' && type[3] == '-' && type[4] == '8';
  if (!utf8) return Printable(address);
  for (char ch : address) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 32 || c == 127) return false;
  }
  return danerelay::relay::ValidUtf8(address);
}

// An address the parser accepted: no controls, no spaces outside quotes, an "@", bounded.
void CheckAddress(std::string_view a, bool utf8, std::string_view line) {
  if (a.size() > 254 || a.find('@') == std::string_view::npos) Violated("address shape", line);
  for (char ch : a) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 32 || c == 127 || (c >= 0x80 && !utf8)) Violated("address bytes", line);
  }
  if (utf8 && !danerelay::relay::ValidUtf8(a)) Violated("address UTF-8", line);
  if (a.front() == '@') Violated("empty local part", line);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace danerelay::relay;
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  const Command cmd = SplitCommand(line);
  if (cmd.name.size() + (cmd.argument.data() ? cmd.argument.size() + 1 : 0) > line.size()) {
    Violated("SplitCommand covers more than the line", line);
  }
  if (auto mail = ParseMail(line)) {
    if (!mail->sender.empty()) CheckAddress(mail->sender, mail->smtputf8, line);
    if (!Printable(mail->envid) || mail->envid.size() > 100) Violated("ENVID", line);
  } else if (mail.error().code < 500 || mail.error().code > 555) {
    Violated("MAIL refusal code", line);
  }
  for (const bool utf8 : {false, true}) {
    if (auto rcpt = ParseRcpt(line, utf8)) {
      CheckAddress(rcpt->recipient, utf8, line);
      if (!OrcptSafe(rcpt->orcpt) || rcpt->orcpt.size() > 500) Violated("ORCPT", line);
    }
  }
  if (auto x = DecodeXtext(line)) {
    if (x->size() > line.size()) Violated("xtext grew", line);
  }
  (void)ValidUtf8(line);
  return 0;
}
