#include "relay/smtp/smtp_command.hpp"

#include "queue/orcpt.hpp"

#include <array>
#include <charconv>
#include <utility>
#include <vector>

namespace danerelay::relay {
namespace {

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool IStartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && IEquals(s.substr(0, prefix.size()), prefix);
}

bool IsAlnum(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// RFC 5322 atext; bytes >= 0x80 are UTF-8 (RFC 6531 §3.3) when allowed.
bool IsAtext(unsigned char c, bool utf8) {
  if (IsAlnum(c)) return true;
  if (c >= 0x80) return utf8;
  return std::string_view("!#$%&'*+-/=?^_`{|}~").find(static_cast<char>(c)) !=
         std::string_view::npos;
}

bool ValidDotString(std::string_view s, bool utf8) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '.') {
      if (s[i - 1] == '.') return false;
    } else if (!IsAtext(c, utf8)) {
      return false;
    }
  }
  return true;
}

bool ValidQuotedString(std::string_view s, bool utf8) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return false;
  for (size_t i = 1; i + 1 < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\\') {
      if (++i + 1 >= s.size()) return false;
      const auto q = static_cast<unsigned char>(s[i]);
      if (q < 32 || q > 126) return false;
    } else if (c == '"' || (c < 32 && c != ' ') || c == 127 || (c >= 0x80 && !utf8)) {
      return false;
    }
  }
  return true;
}

bool ValidDomain(std::string_view d, bool utf8) {
  if (d.empty() || d.size() > 255) return false;
  if (d.front() == '[') {  // address literal, RFC 5321 §4.1.3
    if (d.back() != ']' || d.size() < 3) return false;
    // dcontent: printable ASCII but "[", "]" and "\\" (RFC 5321 §4.1.3).
    for (char c : d.substr(1, d.size() - 2)) {
      if (c == '[' || c == ']' || c == '\\' || c < 33 || c > 126) return false;
    }
    return true;
  }
  size_t start = 0;
  while (start <= d.size()) {
    size_t end = d.find('.', start);
    if (end == std::string_view::npos) end = d.size();
    const std::string_view label = d.substr(start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char ch : label) {
      const auto c = static_cast<unsigned char>(ch);
      if (!IsAlnum(c) && c != '-' && !(c >= 0x80 && utf8)) return false;
    }
    start = end + 1;
  }
  return true;
}

bool HasNonAscii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return true;
  }
  return false;
}

// The refusal RFC 6531 §3.4 asks for when an address under SMTPUTF8 is not valid UTF-8.
SyntaxError BadUtf8(std::string_view what) {
  return SyntaxError{553, "5.6.7", "Malformed UTF-8 in " + std::string(what) + " address"};
}

// Splits "<path> PARAM=VALUE ..." after the "FROM:" or "TO:" keyword. Postfix tolerates a space
// after the colon; so do we. Returns the path without brackets (source route removed) and the
// parameter words.
struct PathAndParams {
  std::string path;
  std::vector<std::string_view> params;
};

tl::expected<PathAndParams, SyntaxError> SplitPath(std::string_view arg, std::string_view keyword,
                                                   std::string_view what) {
  if (!IStartsWith(arg, keyword)) {
    return tl::unexpected(SyntaxError{501, "5.5.4", "Syntax: " + std::string(what)});
  }
  arg.remove_prefix(keyword.size());
  while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);
  if (arg.empty() || arg.front() != '<') {
    return tl::unexpected(SyntaxError{501, "5.5.4", "Syntax: " + std::string(what)});
  }
  // Find the closing '>' outside a quoted local part.
  size_t close = std::string_view::npos;
  bool quoted = false;
  for (size_t i = 1; i < arg.size(); ++i) {
    if (quoted && arg[i] == '\\') {
      ++i;
    } else if (arg[i] == '"') {
      quoted = !quoted;
    } else if (!quoted && arg[i] == '>') {
      close = i;
      break;
    }
  }
  if (close == std::string_view::npos) {
    return tl::unexpected(SyntaxError{501, "5.5.4", "Syntax: " + std::string(what)});
  }
  std::string_view path = arg.substr(1, close - 1);
  // RFC 5321 §4.1.1.3: a source route is accepted and ignored.
  if (!path.empty() && path.front() == '@') {
    const auto colon = path.find(':');
    if (colon == std::string_view::npos) {
      return tl::unexpected(SyntaxError{501, "5.1.3", "Bad address syntax"});
    }
    path.remove_prefix(colon + 1);
  }
  PathAndParams out{std::string(path), {}};
  std::string_view rest = arg.substr(close + 1);
  if (!rest.empty() && rest.front() != ' ') {
    return tl::unexpected(SyntaxError{501, "5.5.4", "Syntax: " + std::string(what)});
  }
  while (!rest.empty()) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    if (rest.empty()) break;
    const auto sp = rest.find(' ');
    out.params.push_back(rest.substr(0, sp));
    rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp);
  }
  return out;
}

// Mailbox = Local-part "@" ( Domain / address-literal ), RFC 5321 §4.1.2, length limits §4.5.3.1.
bool ValidMailbox(std::string_view box, bool utf8) {
  if (box.size() > 254) return false;
  const auto at = box.rfind('@');
  if (at == std::string_view::npos) return false;
  const std::string_view local = box.substr(0, at);
  const std::string_view domain = box.substr(at + 1);
  if (local.empty() || (local.size() > 64 && !utf8)) return false;
  const bool local_ok =
      local.front() == '"' ? ValidQuotedString(local, utf8) : ValidDotString(local, utf8);
  return local_ok && ValidDomain(domain, utf8);
}

std::pair<std::string_view, std::optional<std::string_view>> SplitParam(std::string_view p) {
  const auto eq = p.find('=');
  if (eq == std::string_view::npos) return {p, std::nullopt};
  return {p.substr(0, eq), p.substr(eq + 1)};
}

// The client's own words echoed in a reply: printable and short (a reply line has 512 octets).
std::string Echo(std::string_view text) { return queue::Printable(text, 100); }

SyntaxError BadParam(std::string_view p, std::string_view why) {
  return SyntaxError{501, "5.5.4", "Bad parameter " + Echo(p) + ": " + std::string(why)};
}

// RFC 3461 §4: decoded ENVID and ORCPT values are printable US-ASCII; anything else (CR, LF,
// NUL, 8-bit) would end up raw in a delivery status notification.
std::optional<std::string> DecodePrintableXtext(std::string_view xtext) {
  auto decoded = DecodeXtext(xtext);
  if (!decoded) return std::nullopt;
  for (char c : *decoded) {
    if (c < 32 || c > 126) return std::nullopt;
  }
  return decoded;
}

// An original recipient ends up in DSNs: well-formed UTF-8, no controls, not empty.
bool NonEmptyUtf8WithoutControls(std::string_view s) {
  if (s.empty() || !ValidUtf8(s)) return false;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 32 || c == 127) return false;
  }
  return true;
}

// RFC 6533 §3 utf-8-enc-addr: utf-8-addr-xtext ("\x{HEXPOINT}" escapes), utf-8-addr-unitext
// (UTF-8 as it is) or, as Postfix sends it, RFC 3461 xtext of the UTF-8 bytes ("+C3+BC"). Every
// form decodes to a non-empty address of well-formed UTF-8 without controls: it ends up in DSNs.
std::optional<std::string> DecodeUtf8Addr(std::string_view text) {
  std::string raw;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '+') {
      auto byte = DecodeXtext(text.substr(i, 3));
      if (!byte) return std::nullopt;
      raw += *byte;
      i += 2;
    } else if (c <= 32 || c == 127 || c == '=') {
      return std::nullopt;
    } else {
      raw += static_cast<char>(c);  // QCHAR, "\" of an escape, or UTF-8 (unitext)
    }
  }
  auto decoded = queue::DecodeEmbeddedUnicode(raw);
  if (!decoded || !NonEmptyUtf8WithoutControls(*decoded)) return std::nullopt;
  return decoded;
}

// Postfix (3.7) gives a UTF-8 recipient that came without ORCPT the original recipient
// "rfc822;" + xtext of its UTF-8 bytes. RFC 3461 §4.2 wants rfc822 addresses in ASCII, but
// refusing it bounces the mail at Postfix; in an SMTPUTF8 transaction the address is taken for
// what it is, a UTF-8 address, and kept as RFC 6533's utf-8 type (so it is passed on and shown
// in notices in the utf-8 forms of §3). Well-formed UTF-8 without controls only.
std::optional<std::string> Rfc822Utf8Orcpt(std::string_view type, std::string_view xtext,
                                           bool smtputf8) {
  if (!smtputf8 || !IEquals(type, "rfc822")) return std::nullopt;
  auto decoded = DecodeXtext(xtext);
  if (!decoded || !NonEmptyUtf8WithoutControls(*decoded)) return std::nullopt;
  return decoded;
}

// RFC 3461 §4.2: addr-type is an atom (e.g. "rfc822", "utf-8").
bool ValidAddrType(std::string_view type) {
  if (type.empty() || type.size() > 32) return false;
  for (char c : type) {
    if (!IsAtext(static_cast<unsigned char>(c), false)) return false;
  }
  return true;
}

}  // namespace

bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    // RFC 3629 §4: lead byte, continuation count and the smallest code point it may encode.
    size_t more = 0;
    std::uint32_t cp = 0, min = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      more = 1, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
      more = 2, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      more = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return false;  // a continuation byte, C0/C1 (overlong) or F5..FF
    }
    if (more >= s.size() - i) return false;  // truncated sequence
    for (size_t k = 1; k <= more; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += more + 1;
  }
  return true;
}

Command SplitCommand(std::string_view line) {
  static constexpr std::array<std::pair<std::string_view, Verb>, 13> kVerbs = {{
      {"EHLO", Verb::kEhlo},
      {"HELO", Verb::kHelo},
      {"MAIL", Verb::kMail},
      {"RCPT", Verb::kRcpt},
      {"DATA", Verb::kData},
      {"RSET", Verb::kRset},
      {"NOOP", Verb::kNoop},
      {"QUIT", Verb::kQuit},
      {"VRFY", Verb::kVrfy},
      {"EXPN", Verb::kExpn},
      {"HELP", Verb::kHelp},
      {"STARTTLS", Verb::kStartTls},
      {"AUTH", Verb::kAuth},
  }};
  Command cmd;
  const auto sp = line.find(' ');
  cmd.name = line.substr(0, sp);
  if (sp != std::string_view::npos) cmd.argument = line.substr(sp + 1);
  for (const auto& [name, verb] : kVerbs) {
    if (IEquals(cmd.name, name)) cmd.verb = verb;
  }
  return cmd;
}

std::optional<std::string> DecodeXtext(std::string_view xtext) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < xtext.size(); ++i) {
    const auto c = static_cast<unsigned char>(xtext[i]);
    if (c == '+') {
      if (i + 2 >= xtext.size()) return std::nullopt;
      const int hi = hex(xtext[i + 1]), lo = hex(xtext[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c < 33 || c > 126 || c == '=') {
      return std::nullopt;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

tl::expected<MailArgs, SyntaxError> ParseMail(std::string_view argument) {
  auto split = SplitPath(argument, "FROM:", "MAIL FROM:<address>");
  if (!split) return tl::unexpected(split.error());
  MailArgs args;
  bool seen_size = false, seen_body = false, seen_ret = false, seen_envid = false;
  for (std::string_view p : split->params) {
    const auto [key, value] = SplitParam(p);
    auto once = [&](bool& seen) {
      const bool dup = seen;
      seen = true;
      return !dup;
    };
    if (IEquals(key, "SIZE")) {
      std::uint64_t n = 0;
      if (!value || !once(seen_size)) return tl::unexpected(BadParam(p, "SIZE=octets, once"));
      auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), n);
      if (ec != std::errc() || end != value->data() + value->size() || value->size() > 20) {
        return tl::unexpected(BadParam(p, "SIZE must be a number"));
      }
      args.size = n;
    } else if (IEquals(key, "BODY")) {
      if (!value || !once(seen_body)) return tl::unexpected(BadParam(p, "BODY=7BIT|8BITMIME"));
      if (IEquals(*value, "8BITMIME")) {
        args.body_8bitmime = true;
      } else if (!IEquals(*value, "7BIT")) {
        return tl::unexpected(BadParam(p, "BODY=7BIT|8BITMIME"));
      }
    } else if (IEquals(key, "SMTPUTF8")) {
      if (value || args.smtputf8) return tl::unexpected(BadParam(p, "SMTPUTF8 takes no value"));
      args.smtputf8 = true;
    } else if (IEquals(key, "REQUIRETLS")) {
      if (value || args.requiretls) {
        return tl::unexpected(BadParam(p, "REQUIRETLS takes no value"));
      }
      args.requiretls = true;
    } else if (IEquals(key, "RET")) {
      if (!value || !once(seen_ret)) return tl::unexpected(BadParam(p, "RET=FULL|HDRS"));
      if (IEquals(*value, "FULL")) {
        args.ret = queue::DsnRet::kFull;
      } else if (IEquals(*value, "HDRS")) {
        args.ret = queue::DsnRet::kHdrs;
      } else {
        return tl::unexpected(BadParam(p, "RET=FULL|HDRS"));
      }
    } else if (IEquals(key, "AUTH")) {
      // RFC 4954 §5: AUTH=<> or AUTH=xtext of a mailbox; the session decides whether to keep it.
      if (!value || args.auth) return tl::unexpected(BadParam(p, "AUTH=<> or AUTH=xtext, once"));
      if (*value == "<>") {
        args.auth = std::string();
      } else {
        auto decoded = DecodePrintableXtext(*value);
        if (!decoded || !ValidMailbox(*decoded, false)) {
          return tl::unexpected(BadParam(p, "AUTH must be <> or the xtext of a mailbox"));
        }
        args.auth = std::move(*decoded);
      }
    } else if (IEquals(key, "ENVID")) {
      if (!value || !once(seen_envid)) return tl::unexpected(BadParam(p, "ENVID=xtext, once"));
      auto decoded = DecodePrintableXtext(*value);
      // RFC 3461 §4.4: printable ASCII, at most 100 characters.
      if (!decoded || value->size() > 100) {
        return tl::unexpected(
            BadParam(p, "ENVID must be xtext of printable ASCII, at most 100 characters"));
      }
      args.envid = std::move(*decoded);
    } else {
      return tl::unexpected(SyntaxError{555, "5.5.4", "Unsupported option: " + Echo(key)});
    }
  }
  if (!split->path.empty()) {
    if (HasNonAscii(split->path) && !args.smtputf8) {
      return tl::unexpected(SyntaxError{553, "5.6.7", "Non-ASCII sender address needs SMTPUTF8"});
    }
    if (!ValidUtf8(split->path)) return tl::unexpected(BadUtf8("sender"));
    if (!ValidMailbox(split->path, args.smtputf8)) {
      return tl::unexpected(SyntaxError{501, "5.1.7", "Bad sender address syntax"});
    }
  }
  args.sender = std::move(split->path);
  return args;
}

tl::expected<RcptArgs, SyntaxError> ParseRcpt(std::string_view argument, bool smtputf8) {
  auto split = SplitPath(argument, "TO:", "RCPT TO:<address>");
  if (!split) return tl::unexpected(split.error());
  RcptArgs args;
  bool seen_notify = false, seen_orcpt = false;
  for (std::string_view p : split->params) {
    const auto [key, value] = SplitParam(p);
    if (IEquals(key, "NOTIFY")) {
      if (!value || seen_notify) return tl::unexpected(BadParam(p, "NOTIFY=..., once"));
      seen_notify = true;
      // RFC 3461 §4.1: NEVER alone, or a list of SUCCESS, FAILURE, DELAY.
      std::string_view list = *value;
      while (true) {
        const auto comma = list.find(',');
        const std::string_view item = list.substr(0, comma);
        if (IEquals(item, "NEVER")) {
          args.notify |= queue::kNotifyNever;
        } else if (IEquals(item, "SUCCESS")) {
          args.notify |= queue::kNotifySuccess;
        } else if (IEquals(item, "FAILURE")) {
          args.notify |= queue::kNotifyFailure;
        } else if (IEquals(item, "DELAY")) {
          args.notify |= queue::kNotifyDelay;
        } else {
          return tl::unexpected(BadParam(p, "NOTIFY=NEVER or SUCCESS,FAILURE,DELAY"));
        }
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
      }
      if ((args.notify & queue::kNotifyNever) && args.notify != queue::kNotifyNever) {
        return tl::unexpected(BadParam(p, "NEVER cannot be combined"));
      }
    } else if (IEquals(key, "ORCPT")) {
      if (!value || seen_orcpt) return tl::unexpected(BadParam(p, "ORCPT=type;xtext, once"));
      seen_orcpt = true;
      // RFC 3461 §4.2: addr-type ";" xtext, at most 500 characters.
      const auto semi = value->find(';');
      if (semi == std::string_view::npos || !ValidAddrType(value->substr(0, semi)) ||
          value->size() > 500) {
        return tl::unexpected(BadParam(p, "ORCPT=addr-type;xtext"));
      }
      const std::string_view type = value->substr(0, semi);
      std::optional<std::string> decoded;
      if (IEquals(type, "utf-8")) {
        decoded = DecodeUtf8Addr(value->substr(semi + 1));
        if (!decoded) return tl::unexpected(BadParam(p, "ORCPT=utf-8; address must be UTF-8"));
        args.orcpt = std::string(type) + ";" + *decoded;
      } else if (auto ascii = DecodePrintableXtext(value->substr(semi + 1));
                 ascii && !ascii->empty()) {
        args.orcpt = std::string(type) + ";" + *ascii;
      } else if (auto utf8 = Rfc822Utf8Orcpt(type, value->substr(semi + 1), smtputf8)) {
        args.orcpt = "utf-8;" + *utf8;
      } else {
        return tl::unexpected(BadParam(p, "ORCPT address must be xtext of printable ASCII"));
      }
    } else {
      return tl::unexpected(SyntaxError{555, "5.5.4", "Unsupported option: " + Echo(key)});
    }
  }
  if (HasNonAscii(split->path) && !smtputf8) {
    return tl::unexpected(SyntaxError{553, "5.6.7", "Non-ASCII recipient address needs SMTPUTF8"});
  }
  if (!ValidUtf8(split->path)) return tl::unexpected(BadUtf8("recipient"));
  // A relay has no local mailboxes, so even <postmaster> needs a domain here.
  if (split->path.empty() || !ValidMailbox(split->path, smtputf8)) {
    return tl::unexpected(SyntaxError{501, "5.1.3", "Bad recipient address syntax"});
  }
  args.recipient = std::move(split->path);
  return args;
}

}  // namespace danerelay::relay
