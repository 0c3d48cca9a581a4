#pragma once
// The DKIM signer in force, one per daemon, shared by the SMTP server (submissions), the
// delivery agent and the queue's upkeep (bounces, delay warnings, "relayed" notices, composed
// on the queue's writer thread) and the TLS reporter (reports). Loaded at start and on every
// reload; a signing under way keeps the signer it started with. Logs what it did per message;
// counting danerelay_dkim_total is the io thread's (CountOutcome).
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <tl/expected.hpp>

#include "relay/dkim/signer.hpp"

namespace danerelay::relay::dkim {

class SignerSlot {
 public:
  // Loads the keys of `options` (none: signing off); danerelay's own mail is signed for
  // `options.notices_domain`, else for `hostname` or the nearest parent with a key. On error
  // the signer in force stays.
  tl::expected<void, std::string> Load(const DkimOptions& options, const std::string& hostname);

  // A submission, before it is committed. Thread-safe. None: signing is off (no key
  // configured). Report the result once the message is queued (Report).
  std::optional<SignResult> SignSubmission(std::string& content, const Submission& from) const;
  // danerelay's own mail; logs when it signed. Thread-safe. No key for the notices domain:
  // unsigned without a line per message (Load said so once).
  std::optional<SignResult> SignOwn(std::string& content, const std::string& id) const;

 private:
  std::shared_ptr<const Signer> Current(std::string* own_domain) const;

  mutable std::mutex mutex_;
  std::shared_ptr<const Signer> signer_;  // null: no key configured
  std::string own_domain_;
};

// A queued submission's result: its log line (after Postfix's cleanup line, as OpenDKIM's
// would follow it) and danerelay_dkim_total{outcome} (io thread only, like every counter).
void Report(const std::string& id, const SignResult& r);

}  // namespace danerelay::relay::dkim
