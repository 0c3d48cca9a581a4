#include "relay/dkim/key.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <sstream>
#include <vector>

namespace danerelay::relay::dkim {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Bio = std::unique_ptr<BIO, BioFree>;

std::string OpenSslError() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

std::string Base64(const unsigned char* data, std::size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
  return out;
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, n > 0 ? static_cast<std::size_t>(n) : 0);
}

// PKCS#8 PEM, which libopendkim reads for both algorithms.
tl::expected<std::string, std::string> PrivatePem(EVP_PKEY* pkey) {
  Bio pem(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PrivateKey(pem.get(), pkey, nullptr, nullptr, 0, nullptr, nullptr)) {
    return tl::unexpected(OpenSslError());
  }
  return BioText(pem.get());
}

tl::expected<Key, std::string> RsaKey(EVP_PKEY* pkey) {
  Key key;
  key.algorithm = Algorithm::kRsaSha256;
  key.bits = EVP_PKEY_get_bits(pkey);
  if (key.bits < kMinRsaBits) {  // RFC 8301 §3.2: smaller keys must not be used
    return tl::unexpected("RSA key of " + std::to_string(key.bits) +
                          " bits is too weak (at least " + std::to_string(kMinRsaBits) +
                          ", 2048 recommended)");
  }
  auto pem = PrivatePem(pkey);
  if (!pem) return tl::unexpected(pem.error());
  key.secret = std::move(*pem);
  unsigned char* der = nullptr;
  const int n = i2d_PUBKEY(pkey, &der);
  if (n <= 0) return tl::unexpected(OpenSslError());
  key.public_b64 = Base64(der, static_cast<std::size_t>(n));
  OPENSSL_free(der);
  return key;
}

tl::expected<Key, std::string> Ed25519Key(EVP_PKEY* pkey) {
  Key key;
  key.algorithm = Algorithm::kEd25519Sha256;
  key.bits = 256;
  auto pem = PrivatePem(pkey);
  if (!pem) return tl::unexpected(pem.error());
  key.secret = std::move(*pem);
  unsigned char raw[32];
  std::size_t len = sizeof raw;
  if (!EVP_PKEY_get_raw_public_key(pkey, raw, &len) || len != sizeof raw) {
    return tl::unexpected(OpenSslError());
  }
  key.public_b64 = Base64(raw, len);
  return key;
}

}  // namespace

tl::expected<Key, std::string> ParseKey(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  // No passphrase callback would make OpenSSL prompt on the terminal for an encrypted key; a
  // daemon has no one to ask.
  const auto no_passphrase = [](char*, int, int, void*) { return 0; };
  Pkey pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  if (!pkey) {
    return tl::unexpected("not an unencrypted PEM private key: " + OpenSslError());
  }
  switch (EVP_PKEY_get_base_id(pkey.get())) {
    case EVP_PKEY_RSA:
      return RsaKey(pkey.get());
    case EVP_PKEY_ED25519:
      return Ed25519Key(pkey.get());
    default:
      return tl::unexpected(std::string("neither an RSA nor an Ed25519 key"));
  }
}

tl::expected<Key, std::string> LoadKey(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    return tl::unexpected(fmt::format("cannot read {} (as uid {}): {}", file.string(), ::geteuid(),
                                      std::strerror(errno)));
  }
  struct stat st {};
  std::string text;
  const bool stated = ::fstat(fd, &st) == 0;
  if (stated && S_ISREG(st.st_mode) && (st.st_mode & (S_IROTH | S_IWOTH | S_IWGRP)) == 0) {
    char buf[4096];
    ssize_t n = 0;
    while (text.size() < (1u << 20) && (n = ::read(fd, buf, sizeof buf)) > 0) {
      text.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  if (!stated || !S_ISREG(st.st_mode)) {
    return tl::unexpected(file.string() + ": not a regular file");
  }
  // As OpenDKIM's RequireSafeKeys: a private key others can read (or change) is no secret.
  if ((st.st_mode & (S_IROTH | S_IWOTH | S_IWGRP)) != 0) {
    return tl::unexpected(
        fmt::format("{}: mode {:04o} lets others read or change the key; "
                    "chmod 600 (or 640 for a group)",
                    file.string(), st.st_mode & 07777));
  }
  auto key = ParseKey(text);
  if (!key) return tl::unexpected(file.string() + ": " + key.error());
  return key;
}

tl::expected<std::string, std::string> GenerateKeyPem(const std::string& algorithm) {
  Pkey pkey;
  if (algorithm == "ed25519") {
    pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  } else if (algorithm == "rsa2048" || algorithm == "rsa3072") {
    pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA",
                                 static_cast<std::size_t>(algorithm == "rsa2048" ? 2048 : 3072)));
  } else {
    return tl::unexpected("unknown algorithm " + algorithm + " (rsa2048, rsa3072, ed25519)");
  }
  if (!pkey) return tl::unexpected(OpenSslError());
  Bio pem(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PrivateKey(pem.get(), pkey.get(), nullptr, nullptr, 0, nullptr, nullptr)) {
    return tl::unexpected(OpenSslError());
  }
  return BioText(pem.get());
}

std::string TxtRecord(const Key& key) {
  const char* k = key.algorithm == Algorithm::kEd25519Sha256 ? "ed25519" : "rsa";
  return std::string("v=DKIM1; k=") + k + "; p=" + key.public_b64;
}

const char* AlgorithmName(Algorithm a) {
  return a == Algorithm::kEd25519Sha256 ? "ed25519-sha256" : "rsa-sha256";
}

}  // namespace danerelay::relay::dkim
