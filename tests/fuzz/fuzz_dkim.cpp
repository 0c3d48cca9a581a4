// Fuzz target: DKIM signing at acceptance (relay/dkim/signer.cpp) on hostile messages. The first
// byte decides sign_subdomains; the rest is the message as the queue stores it. Keys: Ed25519
// and RSA 1024 for example.org, RSA 1024 for example.net (made once, in a temporary directory).
// Invariants: signing never changes the message itself (the fields are prepended, the original
// bytes follow unchanged); a message is signed only for the domain of its single header From
// (or a parent with sign_subdomains), one field per key of that domain, each naming it as d=,
// and the result has exactly one From field more than none: the original's; a message left
// unsigned is byte for byte the input.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "relay/dkim/headers.hpp"
#include "relay/dkim/key.hpp"
#include "relay/dkim/signer.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

using danerelay::fuzz::Violated;
namespace dkim = danerelay::relay::dkim;

void Write(const std::filesystem::path& path, const std::string& pem) {
  std::ofstream(path) << pem;
  std::filesystem::permissions(
      path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

// RSA 1024 (the least the signer takes, RFC 8301) keeps the target fast; keygen makes >= 2048.
std::string Rsa1024Pem() {
  EVP_PKEY* key = EVP_RSA_gen(1024);
  BIO* bio = BIO_new(BIO_s_mem());
  if (!key || !bio ||
      PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    std::abort();
  }
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  EVP_PKEY_free(key);
  return pem;
}

danerelay::relay::DkimOptions Options(bool subdomains) {
  static const std::filesystem::path dir = [] {
    char tmpl[] = "/tmp/fuzz-dkim-XXXXXX";
    if (!mkdtemp(tmpl)) std::abort();
    return std::filesystem::path(tmpl);
  }();
  static const auto ed = [] {
    Write(dir / "ed.pem", *dkim::GenerateKeyPem("ed25519"));
    return dir / "ed.pem";
  }();
  static const auto rsa = [] {
    Write(dir / "rsa.pem", Rsa1024Pem());
    return dir / "rsa.pem";
  }();
  danerelay::relay::DkimOptions o;
  o.keys = {{"example.org", "ed", ed}, {"example.org", "rsa", rsa}, {"example.net", "r", rsa}};
  o.sign_subdomains = subdomains;
  return o;
}

const dkim::Signer& SignerFor(bool subdomains) {
  static const auto plain = dkim::Signer::Make(Options(false));
  static const auto sub = dkim::Signer::Make(Options(true));
  const auto& s = subdomains ? sub : plain;
  if (!s) std::abort();
  return **s;
}

std::size_t KeysOf(const std::string& d) {
  return d == "example.org" ? 2 : d == "example.net" ? 1 : 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  danerelay::fuzz::Input in(data, size);
  const std::uint8_t flags = in.Byte();
  const bool subdomains = flags & 1;
  const bool restricted = flags & 2;  // [auth] senders allow this user only @example.net
  const std::string original(in.Rest());
  std::string content = original;
  dkim::Submission client;
  client.authenticated = true;
  client.client_ip = "192.0.2.1";
  client.user = "fuzz";
  if (restricted) {
    client.may_use_from = [](std::string_view a) { return a.ends_with("@example.net"); };
  }
  const dkim::SignResult r = SignerFor(subdomains).Sign(content, client);
  if (r.outcome != dkim::Outcome::kSigned) {
    if (content != original) Violated("an unsigned message was changed", content);
    return 0;
  }
  if (content.size() <= original.size() || !content.ends_with(original)) {
    Violated("signing changed the message itself", content);
  }
  std::size_t body = 0;
  const auto from = dkim::FromDomain(dkim::SplitHeader(original, &body));
  if (!from || *from != r.domain) Violated("signed for another domain than the From's", content);
  if (restricted && *from != "example.net") Violated("signed a From the user may not use", content);
  if (original.substr(0, body).find('\0') != std::string::npos) {
    Violated("signed a header holding a NUL byte", content);
  }
  std::size_t added_body = 0;
  const std::string added = content.substr(0, content.size() - original.size()) + "\r\n";
  const auto fields = dkim::SplitHeader(added, &added_body);
  const auto domains = dkim::SignedDomains(fields);
  if (domains.empty()) Violated("signed without a DKIM-Signature field", content);
  const std::string d = domains.front();
  if (!std::all_of(fields.begin(), fields.end(), [](const auto& f) {
        return dkim::EqualsIgnoreCase(f.name, "DKIM-Signature");
      })) {
    Violated("something other than DKIM-Signature fields was added", content);
  }
  const bool aligned = d == *from || (subdomains && from->ends_with("." + d));
  if (!aligned || domains.size() != KeysOf(d) ||
      std::any_of(domains.begin(), domains.end(), [&](const auto& x) { return x != d; })) {
    Violated("d= is not the From domain, or not one signature per key", content);
  }
  return 0;
}
