// The TLS verdict with certificates made by the test (issue 11): a real handshake between our
// client context (PrepareClient, GetVerdict) and an OpenSSL server over a memory BIO pair.
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <asio/ssl/context.hpp>

#include <gtest/gtest.h>

#include "tls/client.hpp"

namespace danerelay::tls {
namespace {

struct Cert {
  EVP_PKEY* key = nullptr;
  X509* x509 = nullptr;
};

void AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  ASSERT_NE(ext, nullptr);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A certificate for `name`, signed by `issuer` (self-signed when null), valid from
// `from_hours` to `to_hours` relative to now.
// `san`: whether the name is also a subjectAltName DNS-ID (else it is in the subject CN only).
Cert MakeCert(const std::string& name, const Cert* issuer, bool ca, long from_hours = -1,
              long to_hours = 24, bool san = true) {
  static long serial = 1;
  Cert c;
  c.key = EVP_EC_gen("P-256");
  c.x509 = X509_new();
  X509_set_version(c.x509, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(c.x509), serial++);
  X509_gmtime_adj(X509_getm_notBefore(c.x509), from_hours * 3600);
  X509_gmtime_adj(X509_getm_notAfter(c.x509), to_hours * 3600);
  X509_set_pubkey(c.x509, c.key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(c.x509), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
  X509* issuer_cert = issuer ? issuer->x509 : c.x509;
  X509_set_issuer_name(c.x509, X509_get_subject_name(issuer_cert));
  if (ca) {
    AddExt(c.x509, issuer_cert, NID_basic_constraints, "critical,CA:TRUE");
    AddExt(c.x509, issuer_cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else if (san) {
    AddExt(c.x509, issuer_cert, NID_subject_alt_name, ("DNS:" + name).c_str());
  }
  X509_sign(c.x509, issuer ? issuer->key : c.key, EVP_sha256());
  return c;
}

void Free(Cert& c) {
  X509_free(c.x509);
  EVP_PKEY_free(c.key);
}

std::vector<std::uint8_t> Digest(const unsigned char* der, int len, const EVP_MD* md) {
  std::vector<std::uint8_t> out(EVP_MD_size(md));
  unsigned int n = 0;
  EVP_Digest(der, static_cast<size_t>(len), out.data(), &n, md, nullptr);
  return out;
}

// "3 1 1"/"2 1 1" data (selector 1: the SubjectPublicKeyInfo), or selector 0 (the certificate).
std::vector<std::uint8_t> TlsaData(const Cert& c, int selector, const EVP_MD* md) {
  unsigned char* der = nullptr;
  const int len = selector == 1 ? i2d_PUBKEY(c.key, &der) : i2d_X509(c.x509, &der);
  auto out = Digest(der, len, md);
  OPENSSL_free(der);
  return out;
}

dns::TlsaRecord Tlsa(int usage, int selector, int mtype, const Cert& c) {
  return dns::TlsaRecord{static_cast<std::uint8_t>(usage), static_cast<std::uint8_t>(selector),
                         static_cast<std::uint8_t>(mtype),
                         TlsaData(c, selector, mtype == 1 ? EVP_sha256() : EVP_sha512())};
}

struct Outcome {
  Verdict verdict;
  std::string sni;  // what the server saw
};

// The server presents `leaf` (and `chain` after it); the client verifies with `dane`.
Outcome Handshake(const Cert& leaf, const std::vector<const Cert*>& chain, const DaneSetup& dane) {
  auto client_ctx = MakeClientContext();
  EXPECT_TRUE(client_ctx);
  SSL_CTX* server_ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX_use_certificate(server_ctx, leaf.x509);
  SSL_CTX_use_PrivateKey(server_ctx, leaf.key);
  for (const Cert* c : chain) SSL_CTX_add1_chain_cert(server_ctx, c->x509);
  SSL* client = SSL_new((*client_ctx)->native_handle());
  SSL* server = SSL_new(server_ctx);
  BIO *c_bio = nullptr, *s_bio = nullptr;
  BIO_new_bio_pair(&c_bio, 0, &s_bio, 0);
  SSL_set_bio(client, c_bio, c_bio);
  SSL_set_bio(server, s_bio, s_bio);
  SSL_set_connect_state(client);
  SSL_set_accept_state(server);
  EXPECT_TRUE(PrepareClient(client, dane.base_domain, &dane));
  bool client_done = false, server_done = false;
  for (int i = 0; i < 100 && !(client_done && server_done); ++i) {
    if (!client_done) client_done = SSL_do_handshake(client) == 1;
    if (!server_done) server_done = SSL_do_handshake(server) == 1;
  }
  EXPECT_TRUE(client_done && server_done) << "handshake did not complete";
  Outcome out;
  out.verdict = GetVerdict(client, true);
  const char* sni = SSL_get_servername(server, TLSEXT_NAMETYPE_host_name);
  out.sni = sni ? sni : "";
  SSL_free(client);
  SSL_free(server);
  SSL_CTX_free(server_ctx);
  return out;
}

// The server presents `leaf`; the client trusts `ca` and checks the certificate under WebPKI
// for `name`, as MTA-STS does (no DANE).
Verdict WebPkiHandshake(const Cert& leaf, const Cert& ca, const std::string& name) {
  auto client_ctx = MakeClientContext();
  EXPECT_TRUE(client_ctx);
  X509_STORE_add_cert(SSL_CTX_get_cert_store((*client_ctx)->native_handle()), ca.x509);
  SSL_CTX* server_ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX_use_certificate(server_ctx, leaf.x509);
  SSL_CTX_use_PrivateKey(server_ctx, leaf.key);
  SSL* client = SSL_new((*client_ctx)->native_handle());
  SSL* server = SSL_new(server_ctx);
  BIO *c_bio = nullptr, *s_bio = nullptr;
  BIO_new_bio_pair(&c_bio, 0, &s_bio, 0);
  SSL_set_bio(client, c_bio, c_bio);
  SSL_set_bio(server, s_bio, s_bio);
  SSL_set_connect_state(client);
  SSL_set_accept_state(server);
  EXPECT_TRUE(PrepareClient(client, name, nullptr, {name}));
  bool client_done = false, server_done = false;
  for (int i = 0; i < 100 && !(client_done && server_done); ++i) {
    if (!client_done) client_done = SSL_do_handshake(client) == 1;
    if (!server_done) server_done = SSL_do_handshake(server) == 1;
  }
  EXPECT_TRUE(client_done && server_done) << "handshake did not complete";
  Verdict v = GetVerdict(client, false);
  SSL_free(client);
  SSL_free(server);
  SSL_CTX_free(server_ctx);
  return v;
}

class VerdictTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = MakeCert("danerelay test CA", nullptr, true);
    leaf_ = MakeCert("mx.example.net", &ca_, false);
    wrong_name_ = MakeCert("someone.else", &ca_, false);
    expired_ = MakeCert("mx.example.net", &ca_, false, -48, -24);
    self_ = MakeCert("mx.example.net", nullptr, false);
    self_expired_wrong_ = MakeCert("someone.else", nullptr, false, -48, -24);
  }
  void TearDown() override {
    for (Cert* c : {&ca_, &leaf_, &wrong_name_, &expired_, &self_, &self_expired_wrong_}) Free(*c);
  }
  // SNI and TLSA base: the MX host; DANE-TA names: the MX host and the next-hop domain.
  static DaneSetup Setup(std::vector<dns::TlsaRecord> records, std::string base = "mx.example.net",
                         std::vector<std::string> extra = {"example.net"}) {
    return DaneSetup{std::move(base), std::move(extra), std::move(records)};
  }

  Cert ca_, leaf_, wrong_name_, expired_, self_, self_expired_wrong_;
};

TEST_F(VerdictTest, DaneEeIgnoresNamesAndDates) {
  // RFC 7672 §3.1.1: DANE-EE authenticates the key; neither the name nor expiry matters.
  const auto o = Handshake(self_expired_wrong_, {}, Setup({Tlsa(3, 1, 1, self_expired_wrong_)}));
  EXPECT_EQ(o.verdict.kind, Verdict::Kind::kVerified) << o.verdict.reason;
  EXPECT_EQ(o.verdict.depth, 0);
  EXPECT_EQ(o.verdict.matched_tlsa, Tlsa(3, 1, 1, self_expired_wrong_).ToString());
  EXPECT_EQ(o.sni, "mx.example.net");
}

TEST_F(VerdictTest, DaneEeWithAnotherKeyIsNotVerified) {
  const auto o = Handshake(self_, {}, Setup({Tlsa(3, 1, 1, leaf_)}));
  EXPECT_EQ(o.verdict.kind, Verdict::Kind::kUntrusted);
}

TEST_F(VerdictTest, DaneTaMatchesTheIssuerWithTheMxHostName) {
  const auto o = Handshake(leaf_, {&ca_}, Setup({Tlsa(2, 0, 1, ca_)}));
  EXPECT_EQ(o.verdict.kind, Verdict::Kind::kVerified) << o.verdict.reason;
  EXPECT_EQ(o.verdict.depth, 1);
  ASSERT_EQ(o.verdict.chain.size(), 2u);
}

TEST_F(VerdictTest, DaneTaMatchesThroughTheNextHopDomain) {
  // The certificate names the next-hop domain only, not the MX host (RFC 7672 §3.2.2).
  Cert domain_cert = MakeCert("example.net", &ca_, false);
  const auto o = Handshake(domain_cert, {&ca_}, Setup({Tlsa(2, 1, 1, ca_)}));
  EXPECT_EQ(o.verdict.kind, Verdict::Kind::kVerified) << o.verdict.reason;
  // Without the next-hop domain among the names, the same certificate does not pass.
  const auto strict =
      Handshake(domain_cert, {&ca_}, Setup({Tlsa(2, 1, 1, ca_)}, "mx.example.net", {}));
  EXPECT_EQ(strict.verdict.kind, Verdict::Kind::kUntrusted);
  Free(domain_cert);
}

TEST_F(VerdictTest, DaneTaChecksNameAndExpiry) {
  const auto wrong = Handshake(wrong_name_, {&ca_}, Setup({Tlsa(2, 0, 1, ca_)}));
  EXPECT_EQ(wrong.verdict.kind, Verdict::Kind::kUntrusted);
  const auto expired = Handshake(expired_, {&ca_}, Setup({Tlsa(2, 0, 1, ca_)}));
  EXPECT_EQ(expired.verdict.kind, Verdict::Kind::kUntrusted);
  EXPECT_NE(expired.verdict.reason.find("expired"), std::string::npos) << expired.verdict.reason;
}

TEST_F(VerdictTest, DaneTaByItsKey) {
  // "2 1 1": the trust anchor's key digest, matched against the CA certificate the server sends.
  const auto o = Handshake(leaf_, {&ca_}, Setup({Tlsa(2, 1, 1, ca_)}));
  EXPECT_EQ(o.verdict.kind, Verdict::Kind::kVerified) << o.verdict.reason;
  EXPECT_EQ(o.verdict.depth, 1);
  // A bare key ("2 1 0", the full SubjectPublicKeyInfo) is a trust anchor even when the server
  // leaves the CA certificate out.
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(ca_.key, &der);
  const dns::TlsaRecord bare{2, 1, 0, std::vector<std::uint8_t>(der, der + len)};
  OPENSSL_free(der);
  const auto b = Handshake(leaf_, {}, Setup({bare}));
  EXPECT_EQ(b.verdict.kind, Verdict::Kind::kVerified) << b.verdict.reason;
  // A digest cannot stand in for a certificate the server did not send (RFC 7671 §5.2.2:
  // servers must include the trust anchor in the chain).
  const auto missing = Handshake(leaf_, {}, Setup({Tlsa(2, 1, 1, ca_)}));
  EXPECT_EQ(missing.verdict.kind, Verdict::Kind::kUntrusted);
}

TEST_F(VerdictTest, DigestAgilityUsesOnlyTheStrongestDigest) {
  // RFC 7671 §9: with SHA-256 and SHA-512 records for the same usage and selector, only the
  // SHA-512 ones count (OpenSSL's default matching-type ranks).
  dns::TlsaRecord wrong_sha256 = Tlsa(3, 1, 1, leaf_);
  wrong_sha256.data[0] ^= 0xff;
  dns::TlsaRecord wrong_sha512 = Tlsa(3, 1, 2, leaf_);
  wrong_sha512.data[0] ^= 0xff;
  const auto a = Handshake(leaf_, {&ca_}, Setup({wrong_sha256, Tlsa(3, 1, 2, leaf_)}));
  EXPECT_EQ(a.verdict.kind, Verdict::Kind::kVerified) << a.verdict.reason;
  EXPECT_EQ(a.verdict.matched_tlsa, Tlsa(3, 1, 2, leaf_).ToString());
  // The reverse: the right SHA-256 record is ignored next to a (wrong) SHA-512 one.
  const auto b = Handshake(leaf_, {&ca_}, Setup({Tlsa(3, 1, 1, leaf_), wrong_sha512}));
  EXPECT_EQ(b.verdict.kind, Verdict::Kind::kUntrusted);
  // Alone, each digest matches.
  EXPECT_EQ(Handshake(leaf_, {&ca_}, Setup({Tlsa(3, 1, 1, leaf_)})).verdict.kind,
            Verdict::Kind::kVerified);
}

TEST_F(VerdictTest, MalformedRecordsAreRefusedBeforeTheHandshake) {
  auto client_ctx = MakeClientContext();
  ASSERT_TRUE(client_ctx);
  SSL* ssl = SSL_new((*client_ctx)->native_handle());
  const DaneSetup junk = Setup({dns::TlsaRecord{3, 1, 0, std::vector<std::uint8_t>(40, 0xab)},
                                dns::TlsaRecord{3, 1, 1, std::vector<std::uint8_t>(31, 1)}});
  EXPECT_FALSE(PrepareClient(ssl, junk.base_domain, &junk));
  SSL_free(ssl);
}

// MTA-STS (RFC 8461 §4.2): the MX host must be a subjectAltName DNS-ID of a certificate from a
// trusted CA; a certificate that names it only in its subject CN is not valid for it, although
// OpenSSL would accept the CN of a certificate without a SAN by default.
TEST_F(VerdictTest, WebPkiNeedsTheMxHostInTheSubjectAltName) {
  const Verdict ok = WebPkiHandshake(leaf_, ca_, "mx.example.net");
  EXPECT_EQ(ok.kind, Verdict::Kind::kTrusted) << ok.reason;
  Cert cn_only = MakeCert("mx.example.net", &ca_, false, -1, 24, /*san=*/false);
  const Verdict v = WebPkiHandshake(cn_only, ca_, "mx.example.net");
  EXPECT_EQ(v.kind, Verdict::Kind::kUntrusted);
  EXPECT_EQ(v.verify_error, X509_V_ERR_HOSTNAME_MISMATCH) << v.reason;
  const Verdict other = WebPkiHandshake(wrong_name_, ca_, "mx.example.net");
  EXPECT_EQ(other.verify_error, X509_V_ERR_HOSTNAME_MISMATCH);
  Free(cn_only);
}

}  // namespace
}  // namespace danerelay::tls
