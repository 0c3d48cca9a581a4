#pragma once
// Why a delivery attempt failed, typed where the failure happens (the DANE decision, the SMTP
// client, the delivery pass) and recorded with the attempt and the recipient, so that what reads
// it later (bounces, TLS-RPT, metrics, `queue show`) never has to parse the text meant for
// people. The text may be reworded freely; the cause and its token may not (the token is stored
// in the queue).
#include <string>
#include <string_view>

namespace danerelay::queue {

enum class Cause {
  kNone,                   // no failure, or one recorded before causes were (an old queue)
  kDns,                    // a DNS lookup failed (MX, address)
  kResolverNotValidating,  // the resolver's self-check fails: no DNS answer can be trusted
  kDnssecInvalid,          // DANE step 1: a lookup failed or was DNSSEC-bogus
  kNoAddress,              // an MX host without an address
  kConnect,                // the TCP connection could not be made
  kSession,                // the connection was lost or timed out before MAIL
  kRefused,                // the server refused the session (greeting, EHLO)
  kLoop,                   // the next hop is this relay
  kStartTlsNotOffered,     // TLS was required and the server offers no STARTTLS
  kStartTlsRefused,        // TLS was required and STARTTLS was refused
  kTlsHandshake,           // the TLS handshake failed
  kDaneSetup,              // the DANE verification could not be set up (OpenSSL)
  kDaneNotVerified,        // DANE: the certificate matched no usable TLSA record
  kStsNotTrusted,          // MTA-STS: the certificate is not valid for the MX under WebPKI
  kStsMxMismatch,          // MTA-STS: the MX host is not in the policy's mx list
  kStsNoPolicy,            // MTA-STS: the domain publishes a policy that could not be had
  kDaneRequired,           // mandatory DANE, and the domain's DNS does not allow it
  kTlsaUnusable,           // mandatory DANE, and no TLSA record is usable for SMTP
  kRequireTlsNotOffered,   // RFC 8689: the next hop does not offer REQUIRETLS
  kRequireTlsUnprotected,  // RFC 8689: no DANE- or MTA-STS-authenticated TLS for REQUIRETLS
  kExtensionMissing,       // the next hop lacks SMTPUTF8 (or 8BITMIME, and no 7-bit form)
  kRemoteReply,            // the server answered MAIL, RCPT or the data with a failure
  kRecipientDomain,        // the recipient domain is unusable (IDNA) or has no mail (null MX)
  kOperator,               // returned by the operator (`queue bounce`)
  kTlsPolicyNotVerified,   // the operator's TLS policy (verify, fingerprint) was not met
  kUpstreamAuth,           // AUTH to an upstream failed or could not be done safely
  kLocalSetup,             // our side: a source address or client certificate cannot be used
};

// The stable name of a cause, as stored in the queue ("dane-not-verified"); "" for kNone.
std::string_view Token(Cause c);
// The cause a stored token names; kNone for "" and for a token this build does not know.
Cause CauseFromToken(std::string_view token);

// The RFC 8460 §4.3 result type of a failed TLS session, where the cause is a TLS matter; ""
// otherwise. A certificate failure can be more specific (expired, host mismatch): the TLS client
// knows from OpenSSL's verification and says so in Failure::result_type.
std::string ResultType(Cause c);

// A failure as it travels from where it happened to where it is recorded.
struct Failure {
  Cause cause = Cause::kNone;
  std::string status;       // RFC 3463 enhanced status, "4.7.5"
  std::string result_type;  // RFC 8460 result type, "" when not a TLS failure
  std::string text;         // for people: logs, `queue show`, the notice's diagnostic
  // Final: trying again cannot help (REQUIRETLS cannot be met, a loop, the domain has no mail),
  // so the recipient is returned rather than deferred. Set where the failure is made, never
  // read back out of `status` or `text`.
  bool permanent = false;
};

}  // namespace danerelay::queue
