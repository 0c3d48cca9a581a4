#include "tls/client.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

namespace danerelay::tls {
namespace {

dns::TlsaRecord R(int usage, int selector, int mtype, size_t len) {
  return dns::TlsaRecord{static_cast<std::uint8_t>(usage), static_cast<std::uint8_t>(selector),
                         static_cast<std::uint8_t>(mtype), std::vector<std::uint8_t>(len, 1)};
}

TEST(TlsaUsabilityTest, OnlyDaneUsagesWithKnownSelectorsAndDigests) {
  EXPECT_TRUE(UsableForSmtp(R(3, 1, 1, 32)));
  EXPECT_TRUE(UsableForSmtp(R(3, 0, 2, 64)));
  EXPECT_TRUE(UsableForSmtp(R(2, 0, 1, 32)));
  EXPECT_FALSE(UsableForSmtp(R(2, 1, 0, 300)));  // "full SPKI" that is no key (issue 11)
  EXPECT_FALSE(UsableForSmtp(R(2, 0, 0, 300)));  // "full certificate" that is none
  EXPECT_FALSE(UsableForSmtp(R(0, 0, 1, 32)));   // PKIX-TA: RFC 7672 §3.1.3
  EXPECT_FALSE(UsableForSmtp(R(1, 1, 1, 32)));   // PKIX-EE
  EXPECT_FALSE(UsableForSmtp(R(4, 1, 1, 32)));   // unknown usage
  EXPECT_FALSE(UsableForSmtp(R(3, 2, 1, 32)));   // unknown selector
  EXPECT_FALSE(UsableForSmtp(R(3, 1, 3, 32)));   // unknown matching type
  EXPECT_FALSE(UsableForSmtp(R(3, 1, 1, 31)));   // SHA-256 of the wrong length
  EXPECT_FALSE(UsableForSmtp(R(3, 1, 2, 32)));   // SHA-512 of the wrong length
  EXPECT_FALSE(UsableForSmtp(R(3, 1, 0, 0)));    // empty full value
  auto usable = UsableForSmtp({R(1, 1, 1, 32), R(3, 1, 1, 32), R(0, 0, 1, 32)});
  ASSERT_EQ(usable.size(), 1u);
  EXPECT_EQ(usable[0].usage, 3);
}

// Usable means what OpenSSL's SSL_dane_tlsa_add takes: "Full" data must parse as the key or
// certificate it claims to be.
TEST(TlsaUsabilityTest, FullDataMustBeARealKeyOrCertificate) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  ASSERT_NE(key, nullptr);
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(key, &der);
  ASSERT_GT(len, 0);
  std::vector<std::uint8_t> spki(der, der + len);
  OPENSSL_free(der);
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("mx.test"), -1, -1, 0);
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  ASSERT_GT(X509_sign(cert, key, EVP_sha256()), 0);
  der = nullptr;
  const int clen = i2d_X509(cert, &der);
  ASSERT_GT(clen, 0);
  std::vector<std::uint8_t> full_cert(der, der + clen);
  OPENSSL_free(der);
  X509_free(cert);
  EVP_PKEY_free(key);

  EXPECT_TRUE(UsableForSmtp(dns::TlsaRecord{3, 1, 0, spki}));
  EXPECT_TRUE(UsableForSmtp(dns::TlsaRecord{2, 1, 0, spki}));
  EXPECT_TRUE(UsableForSmtp(dns::TlsaRecord{2, 0, 0, full_cert}));
  EXPECT_TRUE(UsableForSmtp(dns::TlsaRecord{3, 0, 0, full_cert}));
  // The wrong kind of data for the selector, or a truncated value: refused.
  EXPECT_FALSE(UsableForSmtp(dns::TlsaRecord{3, 1, 0, full_cert}));
  EXPECT_FALSE(UsableForSmtp(dns::TlsaRecord{2, 0, 0, spki}));
  spki.pop_back();
  EXPECT_FALSE(UsableForSmtp(dns::TlsaRecord{3, 1, 0, spki}));
}

TEST(TlsaUsabilityTest, ZoneFileForm) {
  EXPECT_EQ((dns::TlsaRecord{3, 1, 1, {0xab, 0x01}}).ToString(), "3 1 1 AB01");
}

}  // namespace
}  // namespace danerelay::tls
