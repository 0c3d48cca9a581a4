#include "relay/smtp/sasl.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <vector>

namespace danerelay::relay {

std::optional<std::string> DecodeBase64(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  if (text.empty()) return std::string();
  // EVP_DecodeBlock skips surrounding whitespace and decodes padding as zero bytes: refuse the
  // first, count the second.
  const bool clean = std::all_of(text.begin(), text.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=';
  });
  const size_t pad = text.ends_with("==") ? 2 : text.ends_with("=") ? 1 : 0;
  if (!clean || text.substr(0, text.size() - pad).find('=') != std::string_view::npos) {
    return std::nullopt;
  }
  std::vector<unsigned char> out(text.size() / 4 * 3);
  const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0 || static_cast<size_t>(n) < pad) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(out.data()), static_cast<size_t>(n) - pad);
}

std::string EncodeBase64(std::string_view data) {
  std::vector<unsigned char> out((data.size() + 2) / 3 * 4 + 1);
  const int n = EVP_EncodeBlock(out.data(), reinterpret_cast<const unsigned char*>(data.data()),
                                static_cast<int>(data.size()));
  return std::string(reinterpret_cast<const char*>(out.data()), static_cast<size_t>(n));
}

SaslExchange::Status SaslExchange::Start(std::string_view argument) {
  const auto space = argument.find(' ');
  mechanism_ = std::string(argument.substr(0, space));
  for (char& c : mechanism_) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (mechanism_ != "PLAIN" && mechanism_ != "LOGIN") return Status::kUnknownMechanism;
  step_ = 0;
  if (space == std::string_view::npos) {
    // No initial response: PLAIN asks with an empty challenge, LOGIN for the user name.
    challenge_ = mechanism_ == "PLAIN" ? "" : EncodeBase64("Username:");
    return Status::kChallenge;
  }
  const std::string_view initial = argument.substr(space + 1);
  return Step(initial == "=" ? std::string_view() : initial);
}

SaslExchange::Status SaslExchange::Continue(std::string_view line) {
  if (line == "*") return Status::kCancelled;  // RFC 4954 §4
  return Step(line);
}

SaslExchange::Status SaslExchange::Step(std::string_view response) {
  auto decoded = DecodeBase64(response);
  if (!decoded) return Status::kBadBase64;
  if (mechanism_ == "PLAIN") {
    // RFC 4616 §2: [authzid] NUL authcid NUL passwd. Acting for someone else is not offered.
    const auto a = decoded->find('\0');
    const auto b = a == std::string::npos ? a : decoded->find('\0', a + 1);
    if (b == std::string::npos) return Status::kMalformed;
    const std::string authzid = decoded->substr(0, a);
    user_ = decoded->substr(a + 1, b - a - 1);
    password_ = decoded->substr(b + 1);
    if (user_.empty() || (!authzid.empty() && authzid != user_)) return Status::kMalformed;
    return Status::kDone;
  }
  // LOGIN: the user name, then the password, each as its own response.
  if (step_++ == 0) {
    user_ = std::move(*decoded);
    if (user_.empty()) return Status::kMalformed;
    challenge_ = EncodeBase64("Password:");
    return Status::kChallenge;
  }
  password_ = std::move(*decoded);
  return Status::kDone;
}

}  // namespace danerelay::relay
