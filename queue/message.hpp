#pragma once
// What the queue stores: a message's envelope, its DSN parameters (RFC 3461) and its content.
// Plain data; the queue knows no SMTP.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "queue/failure.hpp"

namespace danerelay::queue {

using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;

// RFC 3461 §4.1 NOTIFY, as a bit set; an empty set means "not given" (default behaviour).
enum Notify : unsigned {
  kNotifyNone = 0,
  kNotifyNever = 1u << 0,
  kNotifySuccess = 1u << 1,
  kNotifyFailure = 1u << 2,
  kNotifyDelay = 1u << 3,
};
std::string NotifyToString(unsigned notify);  // "SUCCESS,FAILURE", "NEVER", "" when not given

// RFC 5322 §3.3 date-time in UTC: "Sun, 22 Nov 2026 08:48:21 +0000".
std::string FormatRfc5322Date(TimePoint time);

// `text` made safe for a header field, a notice or a log line: every byte outside printable
// ASCII (CR, LF, NUL, 8-bit) becomes '?', and text over `max_size` bytes is cut with "...".
// For strings from outside: a HELO name, a remote server's reply.
std::string Printable(std::string_view text, std::size_t max_size);

// The value of the first header field `name` (case-insensitive) in the header section of
// `content`, unfolded and trimmed; "" when there is none.
std::string HeaderValue(std::string_view content, std::string_view name);

// How many header fields named `name` (case-insensitive) the header section of `content` holds:
// the hop count when `name` is "Received" (RFC 5321 §6.3).
std::size_t CountHeaderFields(std::string_view content, std::string_view name);

// The domain of an address (after its last "@"), ASCII-lowercased: what the queue groups,
// selects and schedules recipients by. "" when there is no "@".
std::string RecipientDomain(std::string_view address);

enum class DsnRet { kUnspecified, kFull, kHdrs };  // RFC 3461 §4.3
std::string_view ToString(DsnRet ret);

// relay/DESIGN.md: queued → (attempting) → delivered | deferred → … | failed | expired; held by an
// operator.
enum class RecipientState { kQueued, kAttempting, kDelivered, kDeferred, kFailed, kExpired, kHeld };
std::string_view ToString(RecipientState state);
std::optional<RecipientState> RecipientStateFromString(std::string_view text);

struct NewRecipient {
  std::string address;  // without angle brackets
  unsigned notify = kNotifyNone;
  std::string orcpt;  // RFC 3461 §4.2 "addr-type;xtext" as received, empty when not given
};

// A message as the SMTP server hands it to the queue. `content` is the exact message (headers
// and body, CRLF line ends, dot-unstuffed), including the Received header this relay added.
struct NewMessage {
  std::string id;
  TimePoint arrival;
  std::string sender;  // empty for the null sender <>
  std::vector<NewRecipient> recipients;
  std::string content;
  std::string client_address;  // "192.0.2.1" or "::1"
  std::string client_helo;
  std::string protocol;  // "ESMTP", "ESMTPS", "SMTP"
  bool body_8bitmime = false;
  bool smtputf8 = false;
  bool requiretls = false;  // RFC 8689: only over TLS authenticated by DANE or MTA-STS
  // A TLS-RPT report (RFC 8460 §5.3): delivered despite TLS failures (outside mandatory DANE),
  // and its sessions left out of the reports.
  bool tls_report = false;
  DsnRet dsn_ret = DsnRet::kUnspecified;
  std::string dsn_envid;  // RFC 3461 §4.4, xtext-decoded
  std::string auth_user;  // the SMTP AUTH user that submitted it, "" when none
  // RFC 4954 §5 AUTH= of MAIL as this relay vouches for it: the mailbox when the client was
  // trusted to assert it, "" for AUTH=<>, nullopt when the client sent none.
  std::optional<std::string> mail_auth;
};

struct StoredRecipient {
  int index = 0;
  std::string address;
  RecipientState state = RecipientState::kQueued;
  unsigned notify = kNotifyNone;
  std::string orcpt;
  int attempts = 0;
  std::optional<TimePoint> next_attempt;
  std::string last_status;  // enhanced status of the last attempt, e.g. "4.7.5"
  std::string last_reply;   // text of the last attempt's outcome
  std::string last_remote;  // MX host of the last attempt ("" when none was reached)
  // last_reply is the reply last_remote gave, not this relay's own account (see
  // RecipientUpdate::reply_is_remote).
  bool last_reply_remote = false;
  Cause last_cause = Cause::kNone;  // why the last attempt failed (kNone: delivered, or unknown)
  std::optional<TimePoint> last_attempt;
  bool delay_warned = false;
  // The site of its last attempt or park (AttemptRecord::site), "" while not yet known.
  std::string site;
};

// Everything about a message except its content.
struct MessageInfo {
  std::string id;
  TimePoint arrival;
  std::string sender;
  std::int64_t size = 0;
  std::string client_address;
  std::string client_helo;
  std::string protocol;
  bool body_8bitmime = false;
  bool smtputf8 = false;
  bool requiretls = false;
  bool tls_report = false;  // as in NewMessage
  DsnRet dsn_ret = DsnRet::kUnspecified;
  std::string dsn_envid;
  std::string auth_user;
  std::optional<std::string> mail_auth;  // as in NewMessage
  std::vector<StoredRecipient> recipients;
};

// The outcome of one delivery attempt for one recipient, as the delivery agent reports it.
struct RecipientUpdate {
  int index = 0;
  RecipientState state = RecipientState::kDeferred;
  std::optional<TimePoint> next_attempt;  // for kDeferred
  std::string status;                     // enhanced status, "2.0.0", "4.7.5", "5.1.1"
  std::string reply;                      // the remote reply or our explanation
  std::string remote;                     // the MX host last contacted, if any
  bool delay_warned = false;              // a delay warning went out with this update
  bool remote_dsn = false;                // delivered to a next hop that offered DSN
  bool attempted = true;  // false: finished with its message (expired), not by an attempt
  // `reply` is the SMTP reply that `remote` sent (RFC 3464 §2.3.5-6: a notice then names it as
  // Remote-MTA with "smtp;" diagnostics). False for this relay's own account of a failure (DNS,
  // DANE, TLS, a refused connection, a loop, a missing extension), even when a host was reached.
  bool reply_is_remote = false;
  Cause cause = Cause::kNone;  // why it failed or was deferred
};

// One row of the attempt history (relay/DESIGN.md: time, MX host, IP, DNSSEC facts, TLS verdict,
// matched TLSA record, SMTP reply, enhanced status).
struct AttemptRecord {
  int recipient_index = 0;
  TimePoint time;
  std::string mx_host;
  std::string ip;
  std::string dnssec_mx;
  std::string dnssec_address;
  std::string dnssec_tlsa;  // "" when TLSA was not looked up
  std::string tls_verdict;  // "Verified", "Untrusted", "Anonymous", "none" (plain text)
  std::string tlsa_record;  // the matched record, zone-file form
  std::string reply;
  std::string status;
  std::string note;     // [dane] testing_domains: "would defer under mandatory DANE: ..."
  std::string mta_sts;  // the MTA-STS policy applied: "enforce id=..." ("" for none)
  // RFC 8460 §4.3 result type of a session that failed its TLS policy ("" otherwise); under
  // an MTA-STS testing policy also of one that was let through (RFC 8461 §5: still a failure).
  std::string result_type;
  // Our end of the connection (RFC 8460 §4.4 sending-mta-ip); "" when none was made.
  std::string sending_ip;
  // The SMTP session the attempt belonged to: the attempts of the recipients sent over one
  // connection (or of one host passed over before connecting) share it, so TLS-RPT counts
  // sessions (RFC 8460 §4.4), not recipients. 0: not known (recorded before schema 13).
  std::int64_t session = 0;
  // RFC 8460 §4.4: the policy the session was made under, typed where the host was planned
  // (relay/delivery/host_planner.hpp, ReportPolicy): "tlsa", "sts" or "no-policy-found"; ""
  // when no host was planned (the MX lookup failed).
  std::string policy_type;
  std::vector<std::string> tlsa_policy;  // with "tlsa": the host's TLSA records, zone-file form
  std::string sts_policy_id;  // with "sts": the id of the policy applied, "" when none was had
  // RFC 8460 §4.3.2: the result type of the failed fetch of the domain's MTA-STS policy (with
  // "sts": none could be had, or the cached one applied), "" when no fetch failed.
  std::string sts_problem;
  // The site the attempt went to (relay/delivery/sites.hpp: "google", "mx1.example.net,...",
  // "route [192.0.2.1]:25"), "" when none was known (the MX lookup failed; before schema 18).
  std::string site;
};

}  // namespace danerelay::queue
