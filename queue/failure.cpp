#include "queue/failure.hpp"

#include <array>
#include <utility>

namespace danerelay::queue {
namespace {

constexpr std::array<std::pair<Cause, std::string_view>, 28> kTokens = {{
    {Cause::kNone, ""},
    {Cause::kDns, "dns"},
    {Cause::kResolverNotValidating, "resolver-not-validating"},
    {Cause::kDnssecInvalid, "dnssec-invalid"},
    {Cause::kNoAddress, "no-address"},
    {Cause::kConnect, "connect"},
    {Cause::kSession, "session"},
    {Cause::kRefused, "refused"},
    {Cause::kLoop, "loop"},
    {Cause::kStartTlsNotOffered, "starttls-not-offered"},
    {Cause::kStartTlsRefused, "starttls-refused"},
    {Cause::kTlsHandshake, "tls-handshake"},
    {Cause::kDaneSetup, "dane-setup"},
    {Cause::kDaneNotVerified, "dane-not-verified"},
    {Cause::kStsNotTrusted, "sts-not-trusted"},
    {Cause::kStsMxMismatch, "sts-mx-mismatch"},
    {Cause::kStsNoPolicy, "sts-no-policy"},
    {Cause::kDaneRequired, "dane-required"},
    {Cause::kTlsaUnusable, "tlsa-unusable"},
    {Cause::kRequireTlsNotOffered, "requiretls-not-offered"},
    {Cause::kRequireTlsUnprotected, "requiretls-unprotected"},
    {Cause::kExtensionMissing, "extension-missing"},
    {Cause::kRemoteReply, "remote-reply"},
    {Cause::kRecipientDomain, "recipient-domain"},
    {Cause::kOperator, "operator"},
    {Cause::kTlsPolicyNotVerified, "tls-policy-not-verified"},
    {Cause::kUpstreamAuth, "upstream-auth"},
    {Cause::kLocalSetup, "local-setup"},
}};

}  // namespace

std::string_view Token(Cause c) {
  for (const auto& [cause, token] : kTokens) {
    if (cause == c) return token;
  }
  return "";
}

Cause CauseFromToken(std::string_view token) {
  for (const auto& [cause, t] : kTokens) {
    if (t == token) return cause;
  }
  return Cause::kNone;
}

std::string ResultType(Cause c) {
  switch (c) {
    case Cause::kStartTlsNotOffered:
    case Cause::kStartTlsRefused:
      return "starttls-not-supported";
    case Cause::kStsNotTrusted:
    case Cause::kTlsPolicyNotVerified:
      return "certificate-not-trusted";
    case Cause::kDaneNotVerified:
    case Cause::kTlsHandshake:
    case Cause::kDaneSetup:
    case Cause::kStsMxMismatch:
      return "validation-failure";
    case Cause::kTlsaUnusable:
      return "tlsa-invalid";
    case Cause::kDnssecInvalid:
      return "dnssec-invalid";
    case Cause::kDaneRequired:
      return "dane-required";
    default:
      return "";
  }
}

}  // namespace danerelay::queue
