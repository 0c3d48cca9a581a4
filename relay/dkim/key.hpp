#pragma once
// A DKIM private key read by OpenSSL: RSA of at least 1024 bits (RFC 8301 §3.2) or Ed25519
// (RFC 8463). Weak, unreadable or other keys are refused with the reason. Also makes new keys
// (`danerelay dkim keygen`) and the public TXT record (RFC 6376 §3.6.1) for a key.
#include <filesystem>
#include <string>

#include <tl/expected.hpp>

namespace danerelay::relay::dkim {

enum class Algorithm { kRsaSha256, kEd25519Sha256 };

struct Key {
  Algorithm algorithm = Algorithm::kRsaSha256;
  int bits = 0;
  // What libopendkim takes as the secret key: PKCS#8 PEM (for Ed25519 too).
  std::string secret;
  // The p= value of the TXT record: base64 of the SubjectPublicKeyInfo (RSA) or of the raw
  // 32-byte public key (Ed25519, RFC 8463 §4).
  std::string public_b64;
};

inline constexpr int kMinRsaBits = 1024;

tl::expected<Key, std::string> LoadKey(const std::filesystem::path& file);
tl::expected<Key, std::string> ParseKey(const std::string& pem);

// "rsa2048", "rsa3072" or "ed25519": a new key as PEM (PKCS#8).
tl::expected<std::string, std::string> GenerateKeyPem(const std::string& algorithm);

// "v=DKIM1; k=rsa; p=..." for the selector's TXT record.
std::string TxtRecord(const Key& key);

// "ed25519-sha256" / "rsa-sha256".
const char* AlgorithmName(Algorithm a);

}  // namespace danerelay::relay::dkim
