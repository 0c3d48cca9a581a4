#include "queue/orcpt.hpp"

#include <fmt/format.h>

#include <cstdint>

namespace danerelay::queue {
namespace {

bool IEqualsUtf8Type(std::string_view type) {
  return type.size() == 5 && (type[0] | 0x20) == 'u' && (type[1] | 0x20) == 't' &&
         (type[2] | 0x20) == 'f' && type[3] == '-' && type[4] == '8';
}

void AppendUtf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// The next code point of well-formed UTF-8 `s` at `i` (the stored address was checked when it
// was received); advances `i`.
std::uint32_t NextCodePoint(std::string_view s, size_t& i) {
  const auto c = static_cast<unsigned char>(s[i++]);
  if (c < 0x80) return c;
  const int more = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
  std::uint32_t cp = c & (0x3F >> more);
  for (int k = 0; k < more && i < s.size(); ++k) {
    cp = (cp << 6) | (static_cast<unsigned char>(s[i++]) & 0x3F);
  }
  return cp;
}

// RFC 6533 §3 QCHAR: printable ASCII except SP, "\", "+" and "=".
bool IsQchar(std::uint32_t cp) {
  return cp >= 0x21 && cp <= 0x7E && cp != '\\' && cp != '+' && cp != '=';
}

// RFC 6533 §3: utf-8-addr-xtext (`unitext` false) keeps only QCHAR and escapes the rest as
// "\x{HEXPOINT}"; utf-8-addr-unitext (`unitext` true) also keeps non-ASCII as UTF-8.
std::string EncodeUtf8Addr(std::string_view address, bool unitext) {
  std::string out;
  for (size_t i = 0; i < address.size();) {
    const size_t start = i;
    const std::uint32_t cp = NextCodePoint(address, i);
    if (IsQchar(cp) || (unitext && cp >= 0x80)) {
      out.append(address.substr(start, i - start));
    } else {
      out += fmt::format("\\x{{{:02X}}}", cp);
    }
  }
  return out;
}

}  // namespace

std::string Xtext(std::string_view s) {
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 33 || c > 126 || c == '+' || c == '=') {
      out += fmt::format("+{:02X}", c);
    } else {
      out += ch;
    }
  }
  return out;
}

std::optional<std::string> DecodeEmbeddedUnicode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\') {
      out += text[i];
      continue;
    }
    // "\x{" 1*6HEXDIG "}"
    if (text.substr(i, 3) != "\\x{") return std::nullopt;
    const auto close = text.find('}', i + 3);
    if (close == std::string_view::npos || close == i + 3 || close - (i + 3) > 6) {
      return std::nullopt;
    }
    std::uint32_t cp = 0;
    for (size_t k = i + 3; k < close; ++k) {
      const char c = text[k];
      int v = -1;
      if (c >= '0' && c <= '9') v = c - '0';
      if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
      if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
      if (v < 0) return std::nullopt;
      cp = cp * 16 + static_cast<std::uint32_t>(v);
    }
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
    AppendUtf8(out, cp);
    i = close;
  }
  return out;
}

std::string OrcptParameter(std::string_view orcpt, bool smtputf8) {
  const auto semi = orcpt.find(';');
  if (semi == std::string_view::npos) return "rfc822;" + Xtext(orcpt);
  const std::string_view type = orcpt.substr(0, semi), address = orcpt.substr(semi + 1);
  if (IEqualsUtf8Type(type)) return std::string(type) + ";" + EncodeUtf8Addr(address, smtputf8);
  return std::string(type) + ";" + Xtext(address);
}

std::string OrcptField(std::string_view orcpt, bool global) {
  const auto semi = orcpt.find(';');
  if (semi == std::string_view::npos) return "rfc822; " + std::string(orcpt);
  const std::string_view type = orcpt.substr(0, semi), address = orcpt.substr(semi + 1);
  // RFC 6533 §3: message/delivery-status is 7-bit, so a utf-8 address goes as xtext form; in
  // message/global-delivery-status it is a utf-8-address, as it is.
  if (IEqualsUtf8Type(type)) {
    return std::string(type) + "; " +
           (global ? std::string(address) : EncodeUtf8Addr(address, false));
  }
  return std::string(type) + "; " + std::string(address);
}

}  // namespace danerelay::queue
