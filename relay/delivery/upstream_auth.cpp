#include "relay/delivery/upstream_auth.hpp"

#include <algorithm>
#include <fstream>

#include "relay/smtp/sasl.hpp"

namespace danerelay::relay {

bool MaySendCredentials(const std::optional<tls::Verdict>& verdict, bool webpki_required,
                        bool allow_unverified) {
  if (allow_unverified) return true;
  if (!verdict) return false;
  return verdict->kind == tls::Verdict::Kind::kVerified ||
         (webpki_required && verdict->kind == tls::Verdict::Kind::kTrusted);
}

std::optional<AuthMechanism> ChooseMechanism(const std::vector<std::string>& offered) {
  const auto has = [&](const char* m) {
    return std::find(offered.begin(), offered.end(), m) != offered.end();
  };
  if (has("PLAIN")) return AuthMechanism::kPlain;
  if (has("LOGIN")) return AuthMechanism::kLogin;
  return std::nullopt;
}

std::string PlainInitialResponse(const std::string& user, const std::string& password) {
  std::string raw;
  raw.push_back('\0');
  raw += user;
  raw.push_back('\0');
  raw += password;
  return EncodeBase64(raw);
}

tl::expected<std::string, std::string> ReadPassword(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::string line;
  if (!in || !std::getline(in, line)) {
    return tl::unexpected("cannot read the password file " + file.string());
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) return tl::unexpected("the password file " + file.string() + " is empty");
  return line;
}

}  // namespace danerelay::relay
