#include "tls/client.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <fmt/format.h>
#include <asio/ssl/context.hpp>

#include "tls/server_context.hpp"

namespace danerelay::tls {

namespace {

// Whether OpenSSL's DANE code takes the record: SSL_dane_tlsa_add on a scratch connection (it
// parses "Full" data as a certificate or a public key and checks digest lengths), so that a
// record counts as usable exactly when the handshake would use it.
bool OpenSslAccepts(const dns::TlsaRecord& r) {
  struct Scratch {
    SSL_CTX* ctx = nullptr;
    Scratch() {
      ctx = SSL_CTX_new(TLS_client_method());
      if (ctx && SSL_CTX_dane_enable(ctx) <= 0) {
        SSL_CTX_free(ctx);
        ctx = nullptr;
      }
    }
    ~Scratch() { SSL_CTX_free(ctx); }
  };
  static thread_local Scratch scratch;
  if (!scratch.ctx) return false;
  SSL* ssl = SSL_new(scratch.ctx);
  if (!ssl) return false;
  bool ok = SSL_dane_enable(ssl, "tlsa.check.invalid") > 0 &&
            SSL_dane_tlsa_add(ssl, r.usage, r.selector, r.mtype, r.data.data(), r.data.size()) > 0;
  SSL_free(ssl);
  ERR_clear_error();
  return ok;
}

}  // namespace

bool UsableForSmtp(const dns::TlsaRecord& r) {
  // RFC 7672 §3.1.3: only DANE-TA(2) and DANE-EE(3) for SMTP; selectors and matching types as
  // RFC 6698 defines them (OpenSSL accepts private-use values we have no use for).
  if (r.usage != 2 && r.usage != 3) return false;
  if (r.selector > 1 || r.mtype > 2) return false;
  return OpenSslAccepts(r);
}

std::vector<dns::TlsaRecord> UsableForSmtp(const std::vector<dns::TlsaRecord>& records) {
  std::vector<dns::TlsaRecord> out;
  for (const auto& r : records) {
    if (UsableForSmtp(r)) out.push_back(r);
  }
  return out;
}

tl::expected<std::shared_ptr<asio::ssl::context>, std::string> MakeClientContext(
    const std::string& ca_file) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX* raw = ctx->native_handle();
  SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
  SSL_CTX_set_options(raw, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_dane_enable(raw) <= 0)
    return tl::unexpected(std::string("SSL_CTX_dane_enable failed"));
  // RFC 7672 §3.1.1: DANE-EE(3) authenticates the key alone; names and dates do not matter.
  SSL_CTX_dane_set_flags(raw, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
  // Verification never aborts the handshake: the verdict is read afterwards, and the policy
  // decides what a failure means (RFC 7672 §2.2: opportunistic callers must not fail).
  SSL_CTX_set_verify(raw, SSL_VERIFY_NONE, nullptr);
  if (ca_file.empty()) {
    SSL_CTX_set_default_verify_paths(raw);
  } else if (SSL_CTX_load_verify_locations(raw, ca_file.c_str(), nullptr) != 1) {
    ERR_clear_error();
    return tl::unexpected(fmt::format("cannot load CA certificates from {}", ca_file));
  }
  ERR_clear_error();
  return ctx;
}

tl::expected<void, std::string> PrepareClient(ssl_st* ssl, const std::string& sni,
                                              const DaneSetup* dane,
                                              const std::vector<std::string>& webpki_names) {
  if (!dane) {
    if (!sni.empty()) SSL_set_tlsext_host_name(ssl, sni.c_str());
    for (size_t i = 0; i < webpki_names.size(); ++i) {
      const std::string& name = webpki_names[i];
      // RFC 8461 §4.2 (by RFC 6125): the MX host must be a DNS-ID of the subjectAltName; a
      // certificate naming it in the subject CN only does not count, even without any SAN
      // (where OpenSSL would fall back to the CN).
      SSL_set_hostflags(ssl,
                        X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
      const int ok = i == 0 ? SSL_set1_host(ssl, name.c_str()) : SSL_add1_host(ssl, name.c_str());
      if (ok != 1) return tl::unexpected("cannot check certificates for " + name);
    }
    return {};
  }
  // SSL_dane_enable also makes the base domain the SNI name and the primary reference name.
  if (SSL_dane_enable(ssl, dane->base_domain.c_str()) <= 0) {
    return tl::unexpected("SSL_dane_enable failed for " + dane->base_domain);
  }
  // DANE-TA names: any of these may appear in the certificate (RFC 7672 §3.2.2).
  for (const auto& name : dane->extra_names) SSL_add1_host(ssl, name.c_str());
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  int added = 0;
  for (const auto& r : dane->records) {
    if (SSL_dane_tlsa_add(ssl, r.usage, r.selector, r.mtype, r.data.data(), r.data.size()) > 0) {
      ++added;
    }
  }
  ERR_clear_error();
  if (added == 0) return tl::unexpected(std::string("no usable TLSA records"));
  return {};
}

tl::expected<void, std::string> UseClientCertificate(ssl_st* ssl, const std::string& cert_file,
                                                     const std::string& key_file) {
  if (SSL_use_certificate_chain_file(ssl, cert_file.c_str()) != 1) {
    ERR_clear_error();
    return tl::unexpected("cannot use the client certificate in " + cert_file);
  }
  if (SSL_use_PrivateKey_file(ssl, key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_check_private_key(ssl) != 1) {
    ERR_clear_error();
    return tl::unexpected("cannot use the client key in " + key_file +
                          " (unreadable, or not the certificate's key)");
  }
  return {};
}

std::string_view ToString(Verdict::Kind kind) {
  switch (kind) {
    case Verdict::Kind::kVerified:
      return "Verified";
    case Verdict::Kind::kTrusted:
      return "Trusted";
    case Verdict::Kind::kUntrusted:
      return "Untrusted";
    case Verdict::Kind::kAnonymous:
      return "Anonymous";
  }
  return "Unknown";
}

namespace {

std::string Hex(const unsigned char* md, unsigned int len) {
  std::string out;
  for (unsigned int i = 0; i < len; ++i) out += fmt::format("{:02X}", md[i]);
  return out;
}

std::string Name(const X509_NAME* name) {
  char buf[512];
  X509_NAME_oneline(name, buf, sizeof buf);
  return buf;
}

std::vector<CertInfo> PeerChain(ssl_st* ssl) {
  std::vector<CertInfo> out;
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
  if (!chain) return out;
  for (int i = 0; i < sk_X509_num(chain); ++i) {
    X509* cert = sk_X509_value(chain, i);
    CertInfo info;
    info.depth = i;
    info.subject = Name(X509_get_subject_name(cert));
    info.issuer = Name(X509_get_issuer_name(cert));
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    // The whole SubjectPublicKeyInfo in DER, as TLSA selector 1 hashes it (not
    // X509_pubkey_digest, which covers only the key bits).
    unsigned char* der = nullptr;
    const int der_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    if (der_len > 0 &&
        EVP_Digest(der, static_cast<size_t>(der_len), md, &len, EVP_sha256(), nullptr) == 1) {
      info.spki_sha256 = Hex(md, len);
    }
    OPENSSL_free(der);
    if (X509_digest(cert, EVP_sha256(), md, &len) == 1) info.cert_sha256 = Hex(md, len);
    out.push_back(std::move(info));
  }
  return out;
}

}  // namespace

Verdict GetVerdict(ssl_st* ssl, bool dane_enabled) {
  Verdict v;
  v.protocol = DescribeSession(ssl);
  v.chain = PeerChain(ssl);
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (!peer) {
    v.kind = Verdict::Kind::kAnonymous;
    v.reason = "no server certificate";
    return v;
  }
  const long result = SSL_get_verify_result(ssl);
  v.verify_error = result;
  if (dane_enabled) {
    EVP_PKEY* mspki = nullptr;
    const int depth = SSL_get0_dane_authority(ssl, nullptr, &mspki);
    if (result == X509_V_OK && depth >= 0) {
      std::uint8_t usage = 0, selector = 0, mtype = 0;
      const unsigned char* data = nullptr;
      size_t len = 0;
      SSL_get0_dane_tlsa(ssl, &usage, &selector, &mtype, &data, &len);
      dns::TlsaRecord matched{usage, selector, mtype, std::vector<std::uint8_t>(data, data + len)};
      v.kind = Verdict::Kind::kVerified;
      v.matched_tlsa = matched.ToString();
      v.depth = depth;
      return v;
    }
    v.kind = Verdict::Kind::kUntrusted;
    v.reason =
        result == X509_V_OK ? "no TLSA record matched" : X509_verify_cert_error_string(result);
    return v;
  }
  v.kind = result == X509_V_OK ? Verdict::Kind::kTrusted : Verdict::Kind::kUntrusted;
  if (result != X509_V_OK) v.reason = X509_verify_cert_error_string(result);
  return v;
}

}  // namespace danerelay::tls
