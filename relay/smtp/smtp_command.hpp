#pragma once
// Sans-I/O parsing of SMTP commands as a server reads them (RFC 5321 §4.1, with the parameters
// of SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531) and DSN (RFC 3461)).
// Input is one command line without its CRLF. No state, no replies beyond syntax errors.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include "queue/message.hpp"

namespace danerelay::relay {

enum class Verb {
  kEhlo,
  kHelo,
  kMail,
  kRcpt,
  kData,
  kRset,
  kNoop,
  kQuit,
  kVrfy,
  kExpn,
  kHelp,
  kStartTls,
  kAuth,
  kUnknown,
};

struct Command {
  Verb verb = Verb::kUnknown;
  std::string_view name;      // the verb as sent
  std::string_view argument;  // the rest of the line after one space, untrimmed
};

Command SplitCommand(std::string_view line);

// A syntax problem with the reply the server gives for it.
struct SyntaxError {
  int code = 501;
  std::string enhanced = "5.5.4";
  std::string text;
};

struct MailArgs {
  std::string sender;  // empty for <>
  std::optional<std::uint64_t> size;
  bool body_8bitmime = false;
  bool smtputf8 = false;
  bool requiretls = false;  // RFC 8689
  queue::DsnRet ret = queue::DsnRet::kUnspecified;
  std::string envid;  // xtext-decoded
  // RFC 4954 §5 AUTH=: the xtext-decoded mailbox, "" for AUTH=<>, nullopt when not given.
  std::optional<std::string> auth;
};

struct RcptArgs {
  std::string recipient;
  unsigned notify = queue::kNotifyNone;
  // "addr-type;address", the address decoded: ASCII for rfc822 (RFC 3461 §4.2), UTF-8 for
  // utf-8 (RFC 6533 §3); see queue/orcpt.hpp.
  std::string orcpt;
};

// "FROM:<a@b> SIZE=10 ..." (the argument of MAIL).
tl::expected<MailArgs, SyntaxError> ParseMail(std::string_view argument);
// "TO:<a@b> NOTIFY=..." (the argument of RCPT). UTF-8 in the address only when the
// transaction's MAIL carried SMTPUTF8.
tl::expected<RcptArgs, SyntaxError> ParseRcpt(std::string_view argument, bool smtputf8);

// RFC 3461 §4: "+XX" hex escapes; nullopt when malformed or outside the xtext alphabet.
std::optional<std::string> DecodeXtext(std::string_view xtext);

// Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
bool ValidUtf8(std::string_view s);

}  // namespace danerelay::relay
