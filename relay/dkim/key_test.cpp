#include "relay/dkim/key.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <gtest/gtest.h>

namespace danerelay::relay::dkim {
namespace {

std::string RsaPem(unsigned bits) {
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(bits));
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, k, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  EVP_PKEY_free(k);
  return pem;
}

TEST(DkimKey, Ed25519GivesTheRawKeysOfRfc8463) {
  auto pem = GenerateKeyPem("ed25519");
  ASSERT_TRUE(pem) << pem.error();
  auto key = ParseKey(*pem);
  ASSERT_TRUE(key) << key.error();
  EXPECT_EQ(key->algorithm, Algorithm::kEd25519Sha256);
  EXPECT_EQ(key->public_b64.size(), 44u);  // base64 of 32 octets
  EXPECT_TRUE(key->secret.starts_with("-----BEGIN PRIVATE KEY-----"));
  EXPECT_EQ(TxtRecord(*key), "v=DKIM1; k=ed25519; p=" + key->public_b64);
}

TEST(DkimKey, RsaOf2048Bits) {
  auto pem = GenerateKeyPem("rsa2048");
  ASSERT_TRUE(pem);
  auto key = ParseKey(*pem);
  ASSERT_TRUE(key) << key.error();
  EXPECT_EQ(key->bits, 2048);
  EXPECT_TRUE(TxtRecord(*key).starts_with("v=DKIM1; k=rsa; p=MII"));
}

TEST(DkimKey, RefusesWeakRsaAndOtherKeys) {
  auto weak = ParseKey(RsaPem(768));
  ASSERT_FALSE(weak);
  EXPECT_NE(weak.error().find("768 bits is too weak"), std::string::npos);
  EXPECT_TRUE(ParseKey(RsaPem(1024)));
  EXPECT_FALSE(ParseKey("not a key"));
  EXPECT_FALSE(GenerateKeyPem("dsa"));
  EXPECT_FALSE(LoadKey("/nonexistent/dkim.key"));
}

// An encrypted key is refused at once: OpenSSL would otherwise prompt on the terminal (stdin
// of a daemon or of `config check` under a script) for its passphrase.
TEST(DkimKey, RefusesAnEncryptedKeyWithoutAsking) {
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  BIO* bio = BIO_new(BIO_s_mem());
  char pass[] = "secret";
  ASSERT_EQ(PEM_write_bio_PKCS8PrivateKey(bio, k, EVP_aes_256_cbc(), pass, 6, nullptr, nullptr), 1);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  const std::string pem(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  EVP_PKEY_free(k);
  ASSERT_NE(pem.find("ENCRYPTED"), std::string::npos);
  const auto key = ParseKey(pem);
  ASSERT_FALSE(key);
  EXPECT_NE(key.error().find("not an unencrypted PEM private key"), std::string::npos);
}

}  // namespace
}  // namespace danerelay::relay::dkim
