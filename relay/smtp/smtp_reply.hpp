#pragma once
// Sans-I/O parsing of SMTP replies as a client reads them (RFC 5321 §4.2), with the enhanced
// status code of RFC 2034/3463 when the server gives one.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

namespace danerelay::relay {

struct Reply {
  int code = 0;
  std::string enhanced;            // "5.1.1", or "" when the server gave none
  std::vector<std::string> lines;  // text after "250-"/"250 ", enhanced code kept
  bool Positive() const { return code >= 200 && code < 400; }
  bool Transient() const { return code >= 400 && code < 500; }
  bool Permanent() const { return code >= 500; }
  // "550 5.1.1 <bob@example.net>: Recipient address rejected", lines joined by spaces.
  std::string Text() const;
  // The EHLO keywords (upper case) after the first line: "PIPELINING", "SIZE", "STARTTLS", ...
  bool HasExtension(std::string_view keyword) const;
  // The parameters of an EHLO keyword, upper case: {"PLAIN", "LOGIN"} for "AUTH PLAIN LOGIN".
  std::vector<std::string> ExtensionParams(std::string_view keyword) const;
};

class ReplyParser {
 public:
  void Feed(std::string_view bytes) { buffer_.append(bytes); }
  // A complete reply, nullopt when more input is needed, or an error for a malformed reply
  // (the connection is then useless).
  std::optional<tl::expected<Reply, std::string>> Next();

 private:
  std::string buffer_;
  Reply partial_;
};

}  // namespace danerelay::relay
