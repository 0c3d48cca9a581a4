#pragma once
// Signs a message once, at acceptance, before it is committed to the queue (so every retry
// sends the same bytes): the keys for the header From domain each add one DKIM-Signature field
// at the top of the header. Decides whether to sign (the submission's source, an existing
// signature for the same d=) and says why it did not. No I/O besides loading the keys in Make.
// A reload makes a new Signer; messages being signed keep the one they started with.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "relay/dkim/key.hpp"
#include "relay/dkim/options.hpp"

namespace danerelay::relay::dkim {

class OpenDkim;

enum class Outcome { kSigned, kNoKey, kNotSource, kAlreadySigned, kError };
// "signed", "no_key", ...: the label of danerelay_dkim_total{outcome}.
const char* OutcomeName(Outcome o);

// Who handed the message in.
struct Submission {
  bool authenticated = false;
  bool trusted = false;  // in trusted_networks
  std::string client_ip;
};

struct SignResult {
  Outcome outcome = Outcome::kNoKey;
  std::string domain;  // the From domain (signed as d=, or why not)
  std::string detail;  // signed: "s=sel1 (rsa-sha256), s=sel2 (ed25519-sha256)"; else the reason
};

// The default h= list: the fields RFC 6376 §5.4.1 recommends; From is signed once more than it
// occurs (oversigned), so no second From can be added without breaking the signature.
const std::vector<std::string>& DefaultSignedHeaders();

class Signer {
 public:
  // Loads every key; an error names the key file and why it was refused.
  static tl::expected<std::shared_ptr<const Signer>, std::string> Make(const DkimOptions& options);
  ~Signer();

  // Signs `content` (header and body, CRLF) in place when `from` is a source to sign and a key
  // matches the header From domain.
  SignResult Sign(std::string& content, const Submission& from) const;
  // danerelay's own mail (notices, TLS-RPT): signed with the keys of `domain` or of its nearest
  // parent that has keys (a host name relay.example.org signs as example.org: aligned for
  // DMARC's relaxed mode), whatever the From and sign_subdomains.
  SignResult SignOwn(std::string& content, const std::string& domain) const;
  // Whether SignOwn(…, domain) finds a key.
  bool HasOwnKey(const std::string& domain) const;

  bool Empty() const { return keys_.empty(); }
  // "selector._domainkey.domain" of each Ed25519 key (libopendkim leaks per such signature).
  std::vector<std::string> Ed25519Keys() const;

 private:
  struct LoadedKey {
    DkimKeyOptions where;
    Key key;
  };
  Signer();
  bool IsSource(const Submission& from) const;
  // The keys of `domain`, or (with `parents`) of its nearest parent that has any; *d: the
  // domain they belong to.
  std::vector<const LoadedKey*> KeysFor(const std::string& domain, std::string* d,
                                        bool parents) const;
  SignResult SignWith(std::string& content, const std::string& domain,
                      const std::vector<const LoadedKey*>& keys, const std::string& d) const;

  DkimOptions options_;
  std::vector<LoadedKey> keys_;
  std::unique_ptr<OpenDkim> lib_;
};

}  // namespace danerelay::relay::dkim
