#pragma once
// SASL for SMTP AUTH (RFC 4954) as a sans-I/O exchange: the mechanisms PLAIN (RFC 4616) and
// LOGIN (the de-facto one every client speaks). Fed the AUTH argument and then each
// continuation line; says what to send next and, at the end, the credentials. Verifying them is
// the caller's business. Base64 comes from OpenSSL.
#include <optional>
#include <string>
#include <string_view>

namespace danerelay::relay {

// Strict base64 (RFC 4648 §4, padding required); nullopt when malformed.
std::optional<std::string> DecodeBase64(std::string_view text);
std::string EncodeBase64(std::string_view data);

class SaslExchange {
 public:
  enum class Status {
    kChallenge,         // send "334 " + challenge() and feed the client's next line
    kDone,              // credentials complete: user() and password()
    kCancelled,         // the client sent "*": 501 5.0.0
    kBadBase64,         // 501 5.5.2
    kMalformed,         // decoded, but not what the mechanism expects: 535 5.7.8
    kUnknownMechanism,  // 504 5.5.4
  };

  // `argument` is what follows "AUTH ": the mechanism and maybe an initial response ("=" for
  // an empty one, RFC 4954 §4).
  Status Start(std::string_view argument);
  // One continuation line, without its CRLF.
  Status Continue(std::string_view line);

  const std::string& challenge() const { return challenge_; }  // base64
  const std::string& user() const { return user_; }
  const std::string& password() const { return password_; }
  const std::string& mechanism() const { return mechanism_; }

 private:
  Status Step(std::string_view response);
  std::string mechanism_;
  std::string challenge_;
  std::string user_, password_;
  int step_ = 0;
};

}  // namespace danerelay::relay
