#pragma once
// The client side of TLS for delivery: an SSL_CTX with OpenSSL's DANE support enabled, the
// per-connection DANE setup (RFC 7672 §3), and the verdict after the handshake.
// TLSA matching is OpenSSL's; nothing here compares digests.
#include <memory>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "dns/records.hpp"

namespace asio::ssl {
class context;
}
struct ssl_st;

namespace danerelay::tls {

// RFC 7672 §3.1.3: usages 0 (PKIX-TA) and 1 (PKIX-EE) are not for SMTP; only DANE-TA(2) and
// DANE-EE(3) with selector 0/1 and matching type 0/1/2 of the right length are usable.
bool UsableForSmtp(const dns::TlsaRecord& record);
std::vector<dns::TlsaRecord> UsableForSmtp(const std::vector<dns::TlsaRecord>& records);

// A client context: TLS 1.2 or newer, DANE enabled with SHA-256 and SHA-512, no certificate
// name checks for DANE-EE (RFC 7672 §3.1.1), and for the "trusted" verdict (WebPKI, as MTA-STS
// needs) the CA certificates in `ca_file`, or the system's store when it is empty.
tl::expected<std::shared_ptr<asio::ssl::context>, std::string> MakeClientContext(
    const std::string& ca_file = "");

// What a connection requires of TLS, as the DANE policy (relay/policy/dane_policy.hpp) decides
// and the SMTP client carries out.
enum class Requirement {
  kMay,      // STARTTLS if offered, certificate not checked, plain text after a failed handshake
  kEncrypt,  // STARTTLS required, certificate not checked
  kDane,     // STARTTLS required and the certificate must match the usable TLSA records
};

struct DaneSetup {
  std::string base_domain;               // the TLSA base domain; also the SNI name
  std::vector<std::string> extra_names;  // MX host name, next-hop domain (RFC 7672 §3.2.2)
  std::vector<dns::TlsaRecord> records;  // usable ones only
};

// Per connection, before the handshake: SNI, and when `dane` is given, SSL_dane_enable with its
// base domain, the extra reference names and the TLSA records. Returns an error when OpenSSL
// refuses all records (nothing usable: the caller must not go on as if DANE were in force).
// Without `dane`, `webpki_name` (MTA-STS, RFC 8461 §4.2) makes the X.509 verification check
// that name too, so that "Trusted" means: a chain to a trusted CA, valid for that host by a
// subjectAltName DNS-ID (never by the subject CN).
// With several `webpki_names`, any of them will do (the operator's "verify" with tls_names).
tl::expected<void, std::string> PrepareClient(ssl_st* ssl, const std::string& sni,
                                              const DaneSetup* dane,
                                              const std::vector<std::string>& webpki_names = {});

// A client certificate for this connection (a chain in PEM, the leaf first) and its key, read
// from the files now. An error names the file that could not be used.
tl::expected<void, std::string> UseClientCertificate(ssl_st* ssl, const std::string& cert_file,
                                                     const std::string& key_file);

// One certificate of the chain the server sent, as posttls-finger shows it.
struct CertInfo {
  int depth = 0;
  std::string subject;
  std::string issuer;
  std::string spki_sha256;  // hex: what a "3 1 1" / "2 1 1" record holds
  std::string cert_sha256;  // hex: what a "3 0 1" / "2 0 1" record holds
};

struct Verdict {
  enum class Kind { kVerified, kTrusted, kUntrusted, kAnonymous };
  Kind kind = Kind::kAnonymous;
  std::string matched_tlsa;  // the TLSA record that matched, zone-file form ("3 1 1 AB...")
  int depth = -1;            // where in the chain it matched (0 = the server's certificate)
  std::string protocol;      // "TLSv1.3 with cipher ... (256/256 bits)"
  std::string reason;        // why not verified, from the X.509 verification
  long verify_error = 0;     // OpenSSL's X509_V_ERR_* behind `reason` (0: X509_V_OK)
  std::vector<CertInfo> chain;
};
std::string_view ToString(Verdict::Kind kind);  // "Verified", "Trusted", ...

// After the handshake. `dane_enabled` says whether PrepareClient got a DaneSetup.
Verdict GetVerdict(ssl_st* ssl, bool dane_enabled);

}  // namespace danerelay::tls
