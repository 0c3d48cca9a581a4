#pragma once
// Signs a message once, at acceptance, before it is committed to the queue (so every retry
// sends the same bytes): the keys for the header From domain each add one DKIM-Signature field
// at the top of the header. Decides whether to sign (the submission's source, an existing
// signature for the same d=) and says why it did not. No I/O besides loading the keys in Make.
// A reload makes a new Signer; messages being signed keep the one they started with.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "relay/dkim/key.hpp"
#include "relay/dkim/options.hpp"

namespace danerelay::relay::dkim {

class OpenDkim;

// kNotPermitted: an authenticated user's header From is not one [auth] senders allows it;
// kMalformed: a header the library cannot sign as it is sent (a NUL byte, a line that is no
// field); kError: the library failed otherwise (the submission is answered 451).
enum class Outcome {
  kSigned,
  kNoKey,
  kNotSource,
  kNotPermitted,
  kAlreadySigned,
  kMalformed,
  kError
};
// "signed", "no_key", ...: the label of danerelay_dkim_total{outcome}.
const char* OutcomeName(Outcome o);

// Who handed the message in.
struct Submission {
  bool authenticated = false;
  bool trusted = false;  // in trusted_networks
  std::string client_ip;
  std::string user;  // the AUTH identity, when authenticated
  // [auth] senders for `user`: whether it may use this header From address (null: any). The
  // envelope sender was checked at MAIL; the header From is what DMARC aligns with, so a user
  // allowed only sales.example.org never gets an example.org signature for ceo@example.org.
  std::function<bool(std::string_view address)> may_use_from;
};

struct SignResult {
  Outcome outcome = Outcome::kNoKey;
  std::string domain;  // the From domain (signed as d=, or why not)
  std::string detail;  // signed: "s=sel1 (rsa-sha256), s=sel2 (ed25519-sha256)"; else the reason
};

// The default h= list: the fields RFC 6376 §5.4.1 recommends.
const std::vector<std::string>& DefaultSignedHeaders();
// Of those, the ones signed once more than they occur (RFC 6376 §8.15), so that none can be
// added (a second From or Subject, a To or Reply-To the message did not have) without breaking
// the signature: From and the fields a reader sees or a client acts on.
const std::vector<std::string>& OversignedHeaders();

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
  // The d= SignOwn(…, domain) signs as ("": no key).
  std::string OwnKeyDomain(const std::string& domain) const;

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
