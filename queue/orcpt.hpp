#pragma once
// The original recipient of RFC 3461 §4.2 (ORCPT) as the queue stores it, and its encodings:
// the RFC 3461 "rfc822" type and the RFC 6533 §3 "utf-8" type. Stored form: "addr-type;address"
// with the address decoded ("rfc822;bob@example.net", "utf-8;jörg@bücher.example").
// Parsing what a client sent and checking it is the SMTP server's job (relay/smtp).
#include <optional>
#include <string>
#include <string_view>

namespace danerelay::queue {

// RFC 6533 §3: replaces each EmbeddedUnicodeChar ("\x{HEXPOINT}") by the character in UTF-8.
// nullopt for a malformed escape, a surrogate, NUL or a code point above U+10FFFF. Other bytes
// are kept as they are.
std::optional<std::string> DecodeEmbeddedUnicode(std::string_view text);

// The ORCPT parameter value for a next hop (RFC 3461 §4.2, RFC 6533 §3). A utf-8 address goes
// as utf-8-addr-unitext when the next hop offers SMTPUTF8 (`smtputf8`) and as the 7-bit
// utf-8-addr-xtext otherwise; other types as RFC 3461 xtext.
std::string OrcptParameter(std::string_view orcpt, bool smtputf8);

// The Original-Recipient field value (RFC 3464 §2.3.1, RFC 6533 §3): in a 7-bit
// message/delivery-status "rfc822; bob@example.net", "utf-8; j\x{F6}rg@b\x{FC}cher.example";
// in a message/global-delivery-status (`global`) a utf-8 address as it is, "utf-8; jörg@...".
std::string OrcptField(std::string_view orcpt, bool global = false);

// RFC 3461 §4: xtext ("+XX" for "+", "=", and bytes outside "!".."~"); for ENVID and AUTH= too.
std::string Xtext(std::string_view s);

}  // namespace danerelay::queue
