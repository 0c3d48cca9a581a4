#pragma once
// Delivery status notifications to the sender: bounces (RFC 3464 in an RFC 3462
// multipart/report, statuses per RFC 3463) and delay warnings. Pure composition: the caller
// queues the result as a new message from the null sender, in the same transaction as the
// recipient states it reports.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "queue/message.hpp"

namespace danerelay::queue {

// kRelayed: NOTIFY=SUCCESS, and the next hop did not offer DSN to pass it on (RFC 3461 §5.2.2).
enum class NoticeKind { kFailure, kDelay, kRelayed };

struct NoticeOptions {
  NoticeOptions(std::string host = {}) : hostname(std::move(host)) {}  // NOLINT: implicit
  std::string hostname;                   // Reporting-MTA, From: MAILER-DAEMON@hostname
  std::size_t return_size_limit = 50000;  // larger originals come back as headers only
  // When set, the notice goes here instead of to the sender: the postmaster's copy of an
  // undeliverable notice (a message from <>, which never gets a bounce of its own).
  std::string postmaster;
  // How the notice's To: header writes an address: the relay gives IDN domains as A-labels,
  // so that a notice to an address with an ASCII local part needs no SMTPUTF8 for its header.
  std::function<std::string(const std::string&)> header_address;
  // Signs the finished notice (DKIM: relay/dkim/slot.hpp) given its queue ID; unset: unsigned.
  std::function<void(std::string& content, const std::string& id)> sign;
};

// Whether `rcpt` of `m` gets a notice of this kind: never for mail from <> (no bounce loops),
// and RFC 3461 §4.1: NOTIFY=NEVER suppresses, an explicit NOTIFY list must name the kind;
// success is reported only when asked for.
bool WantsNotice(NoticeKind kind, const MessageInfo& m, const StoredRecipient& rcpt);

// A notice for `recipients` (their last_status, last_reply, last_remote and last_attempt say
// what happened). `will_retry_until` is the expiry time, for delay warnings.
NewMessage ComposeNotice(NoticeKind kind, const MessageInfo& original, const std::string& content,
                         const std::vector<StoredRecipient>& recipients, std::string id,
                         TimePoint now, std::optional<TimePoint> will_retry_until,
                         const NoticeOptions& options);

// The bounce for recipients that have just failed or expired, listing those who want one;
// nullopt when nobody does (or the sender is <>).
std::optional<NewMessage> ComposeBounce(const MessageInfo& original, const std::string& content,
                                        const std::vector<StoredRecipient>& finished,
                                        std::string id, TimePoint now,
                                        const NoticeOptions& options);

// The cause in plain words, for the human-readable part.
std::string ExplainStatus(const std::string& status, Cause cause);

}  // namespace danerelay::queue
