#include "queue/notice.hpp"

#include "queue/orcpt.hpp"

#include <fmt/format.h>

#include <ctime>

namespace danerelay::queue {
namespace {

// The header section of a message (through the blank line), at most `limit` bytes cut at a
// line end: a message without a blank line is all header, and may be large.
std::string Headers(const std::string& content, std::size_t limit) {
  auto end = content.find("\r\n\r\n");
  end = end == std::string::npos ? content.size() : end + 2;
  if (end > limit) {
    const auto line_end = content.rfind("\r\n", limit >= 2 ? limit - 2 : 0);
    end = line_end == std::string::npos ? 0 : line_end + 2;
  }
  return content.substr(0, end);
}

// RFC 3463 §2: class "." subject "." detail, 1-3 digits each.
bool IsStatusCode(std::string_view s) {
  int parts = 0;
  size_t digits = 0;
  for (char c : s) {
    if (c >= '0' && c <= '9') {
      if (++digits > 3) return false;
    } else if (c == '.' && digits > 0 && parts < 2) {
      ++parts;
      digits = 0;
    } else {
      return false;
    }
  }
  return parts == 2 && digits > 0 && (s[0] == '2' || s[0] == '4' || s[0] == '5');
}

// Strings from outside (a remote reply, a host name) as they may appear in a notice: one line
// of printable ASCII, short enough for RFC 5322's 998-character limit.
std::string Field(const std::string& text) { return Printable(text, 900); }

bool Is8Bit(const std::string& s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return true;
  }
  return false;
}

// A field that may hold UTF-8 (an address in a global notice, RFC 6533 §3): one line, without
// controls, cut at a character boundary. The addresses were checked when they came in (RFC
// 6531 §3.3), so their bytes above 0x7F are well-formed UTF-8.
std::string Utf8Field(const std::string& text) {
  std::string out;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (out.size() >= 900 && (u & 0xC0) != 0x80) {
      out += "...";
      break;
    }
    out += u < 0x20 || u == 0x7F ? '?' : c;
  }
  return out;
}

// RFC 6533 §6: a notice about mail that needed SMTPUTF8, or that names an address that is not
// ASCII, is a "global" one: message/global-delivery-status with "utf-8" addresses as they are,
// and the original as message/global or message/global-headers. Anything else keeps the
// RFC 3464 form, whose message/delivery-status is 7-bit.
bool NeedsGlobal(const MessageInfo& m, const std::vector<StoredRecipient>& recipients) {
  if (m.smtputf8 || Is8Bit(m.sender)) return true;
  for (const auto& r : recipients) {
    if (Is8Bit(r.address)) return true;
  }
  return false;
}

// RFC 3464 §2.3.2 and RFC 6533 §3: the address type says what the address may hold.
std::string FinalRecipient(const std::string& address, bool global) {
  if (global && Is8Bit(address)) return "utf-8; " + Utf8Field(address);
  return "rfc822; " + address;
}

// The reply came from the remote MTA (a typed fact of the attempt, RecipientUpdate::
// reply_is_remote), or it is this relay's own account of what happened: a DNS or DANE failure,
// a refused connection, a TLS failure, a loop, the expiry. RFC 3464 §2.3.6: diagnostic-type
// "smtp" is for an SMTP reply; our own texts get "X-Danerelay" (as Postfix's "X-Postfix"), and
// only a remote reply names a Remote-MTA (§2.3.5).
std::string DiagnosticCode(const StoredRecipient& r) {
  return (r.last_reply_remote ? "smtp; " : "X-Danerelay; ") + Field(r.last_reply);
}
bool NamesRemote(const StoredRecipient& r) { return r.last_reply_remote && !r.last_remote.empty(); }

}  // namespace

bool WantsNotice(NoticeKind kind, const MessageInfo& m, const StoredRecipient& rcpt) {
  if (m.sender.empty()) return false;
  if (rcpt.notify & kNotifyNever) return false;
  if (kind == NoticeKind::kRelayed) return (rcpt.notify & kNotifySuccess) != 0;
  if (rcpt.notify == kNotifyNone) return true;  // RFC 3461 §4.1: the default includes FAILURE
  return (rcpt.notify & (kind == NoticeKind::kFailure ? kNotifyFailure : kNotifyDelay)) != 0;
}

std::string ExplainStatus(const std::string& status, Cause cause) {
  const std::string s = status.size() > 2 ? status.substr(2) : status;  // "7.5" of "4.7.5"
  if (cause == Cause::kOperator) {
    return "The message was returned by the mail administrator of this relay; it was not "
           "delivered to this recipient.";
  }
  if (s == "7.5") {
    if (cause == Cause::kDaneNotVerified) {
      return "The receiving server's certificate did not match the TLSA records it publishes "
             "in DNSSEC-signed DNS (DANE, RFC 7672). Either its operator changed the "
             "certificate without updating the TLSA records, or someone is impersonating the "
             "server. The mail was not sent.";
    }
    if (cause == Cause::kStartTlsNotOffered || cause == Cause::kStartTlsRefused) {
      return "The receiving server publishes DANE (TLSA) records, or this domain requires "
             "DANE, but the server did not offer encryption (STARTTLS). The mail was not sent "
             "in plain text.";
    }
    return "A secure (DANE-authenticated) connection to the receiving server could not be "
           "established, so the mail was not sent.";
  }
  // RFC 8689 §5's two codes for a REQUIRETLS message.
  if (s == "7.30") {
    return "The message was sent with REQUIRETLS (RFC 8689), and the receiving server does not "
           "support REQUIRETLS, so it could not be passed on with that protection.";
  }
  if (s == "7.10") {
    return "The message was sent with REQUIRETLS (RFC 8689), which requires a connection "
           "encrypted with TLS and authenticated by DANE or MTA-STS; no such connection could "
           "be made to the receiving server.";
  }
  if (s == "4.3") {
    return "The DNS lookups for the receiving domain failed or did not validate (DNSSEC), so "
           "its mail servers could not be found safely.";
  }
  if (s == "1.2") return "The recipient's domain does not exist in DNS.";
  if (s == "1.10") return "The recipient's domain declares that it accepts no mail (null MX).";
  if (s == "4.1" || s == "4.2" || s == "4.4") {
    return "The receiving mail servers could not be reached.";
  }
  if (!status.empty() && status[0] == '5') return "The receiving server refused the message.";
  return "The message could not be delivered in time.";
}

namespace {

// What the parts of one notice share.
struct NoticeParts {
  NoticeKind kind;
  const MessageInfo& original;
  const std::vector<StoredRecipient>& recipients;
  std::optional<TimePoint> will_retry_until;
  const NoticeOptions& options;
  bool failure = kind == NoticeKind::kFailure;
  bool relayed = kind == NoticeKind::kRelayed;
  bool global = false;
  const char* action = failure ? "failed" : relayed ? "relayed" : "delayed";
};

// The notice's own header, up to the MIME preamble.
std::string NoticeHeader(const NoticeParts& p, const std::string& id, const std::string& to,
                         const std::string& boundary, TimePoint now) {
  const NoticeOptions& options = p.options;
  std::string m;
  m += fmt::format("From: MAILER-DAEMON@{} (Mail Delivery System)\r\n", options.hostname);
  m += fmt::format("To: <{}>\r\n", options.header_address ? options.header_address(to) : to);
  m += !options.postmaster.empty() ? "Subject: Postmaster Copy: Undelivered Mail\r\n"
       : p.failure                 ? "Subject: Undelivered Mail Returned to Sender\r\n"
       : p.relayed                 ? "Subject: Successful Mail Delivery Report\r\n"
                                   : "Subject: Delayed Mail (still being retried)\r\n";
  m += fmt::format("Date: {}\r\n", FormatRfc5322Date(now));
  m += fmt::format("Message-ID: <{}@{}>\r\n", id, options.hostname);
  m += "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n";
  // RFC 6522 §3: report-type names the subtype of the second part (RFC 6533 §6).
  m += fmt::format("Content-Type: multipart/report; report-type={};\r\n\tboundary=\"{}\"\r\n",
                   p.global ? "global-delivery-status" : "delivery-status", boundary);
  m += "\r\nThis is a MIME-encapsulated message.\r\n\r\n";
  return m;
}

std::string HumanPart(const NoticeParts& p) {
  const NoticeOptions& options = p.options;
  const bool failure = p.failure, relayed = p.relayed, global = p.global;
  const auto& will_retry_until = p.will_retry_until;
  const auto& recipients = p.recipients;
  // 1. For people. Addresses in a global notice are UTF-8: the part says it is 8bit (RFC 2045
  // §6.2), which the notice's BODY=8BITMIME carries (below).
  std::string human = fmt::format("This is the mail system at host {}.\r\n\r\n", options.hostname);
  if (failure) {
    human +=
        "I'm sorry to have to inform you that your message could not be delivered to one or\r\n"
        "more recipients. It is attached below.\r\n\r\n";
  } else if (relayed) {
    human +=
        "Your message was delivered to the next mail server for the recipients below. That\r\n"
        "server does not offer delivery status notifications, so this is the last report\r\n"
        "you will receive about it.\r\n\r\n";
  } else {
    human +=
        "Your message could not be delivered yet to one or more recipients. It will be\r\n"
        "retried until " +
        (will_retry_until ? FormatRfc5322Date(*will_retry_until) : std::string("it expires")) +
        "; you need not send it again.\r\n\r\n";
  }
  for (const auto& r : recipients) {
    human += fmt::format(
        "<{}>: {}\r\n", global ? Utf8Field(r.address) : r.address,
        relayed ? std::string("delivered") : ExplainStatus(r.last_status, r.last_cause));
    if (!r.last_reply.empty()) {
      // One line of at most 998 octets (RFC 5322 §2.1.1): a host name has at most 255.
      human += fmt::format("    ({}{})\r\n",
                           NamesRemote(r) ? Printable(r.last_remote, 255) + " said: " : "",
                           Printable(r.last_reply, 700));
    }
    human += "\r\n";
  }
  return human;
}

std::string ReportPart(const NoticeParts& p) {
  const NoticeOptions& options = p.options;
  const MessageInfo& original = p.original;
  const bool failure = p.failure, relayed = p.relayed, global = p.global;
  const auto& will_retry_until = p.will_retry_until;
  const auto& recipients = p.recipients;
  const NoticeKind kind = p.kind;
  const char* action = p.action;
  // 2. For programs: RFC 3464 §2.2 (per message) and §2.3 (per recipient); in a global notice
  // RFC 6533 §6.2's message/global-delivery-status, whose fields may hold UTF-8.
  std::string report = fmt::format("Reporting-MTA: dns; {}\r\n", options.hostname);
  report += fmt::format("X-Danerelay-Queue-ID: {}\r\n", original.id);
  if (!original.dsn_envid.empty())
    report += fmt::format("Original-Envelope-Id: {}\r\n", Field(original.dsn_envid));
  report += fmt::format("Arrival-Date: {}\r\n", FormatRfc5322Date(original.arrival));
  for (const auto& r : recipients) {
    report += "\r\n";
    report += fmt::format("Final-Recipient: {}\r\n", FinalRecipient(r.address, global));
    if (!r.orcpt.empty()) {
      report +=
          fmt::format("Original-Recipient: {}\r\n",
                      global ? Utf8Field(OrcptField(r.orcpt, true)) : Field(OrcptField(r.orcpt)));
    }
    report += fmt::format("Action: {}\r\n", action);
    report += fmt::format("Status: {}\r\n", IsStatusCode(r.last_status) ? r.last_status
                                            : failure                   ? "5.0.0"
                                            : relayed                   ? "2.0.0"
                                                                        : "4.0.0");
    if (NamesRemote(r)) report += fmt::format("Remote-MTA: dns; {}\r\n", Field(r.last_remote));
    if (!r.last_reply.empty()) report += fmt::format("Diagnostic-Code: {}\r\n", DiagnosticCode(r));
    if (r.last_attempt)
      report += fmt::format("Last-Attempt-Date: {}\r\n", FormatRfc5322Date(*r.last_attempt));
    if (kind == NoticeKind::kDelay && will_retry_until) {
      report += fmt::format("Will-Retry-Until: {}\r\n", FormatRfc5322Date(*will_retry_until));
    }
  }

  return report;
}

// The third part: the original, whole or its header, and the closing boundary.
std::string OriginalPart(const NoticeParts& p, const std::string& content,
                         const std::string& boundary) {
  const NoticeOptions& options = p.options;
  const MessageInfo& original = p.original;
  const bool relayed = p.relayed, global = p.global;
  std::string m;
  // 3. The original: whole, or its headers when the sender asked (RET=HDRS) or it is large. A
  // REQUIRETLS message's body never goes into a notice (RFC 8689 §5): the notice travels a
  // path back that the sender did not choose.
  // A success report carries only the headers (as Postfix does).
  const bool whole = !relayed && original.dsn_ret != DsnRet::kHdrs && !original.requiretls &&
                     content.size() <= options.return_size_limit;
  const std::string returned = whole ? content : Headers(content, options.return_size_limit);
  const bool eight_bit = Is8Bit(returned);
  m += fmt::format("\r\n--{}\r\nContent-Description: Undelivered {}\r\n", boundary,
                   whole ? "Message" : "Message Headers");
  // RFC 6532 §3.7 message/global and RFC 6533 §6.3 message/global-headers: the original of a
  // global notice may have UTF-8 in its header.
  m += fmt::format("Content-Type: {}\r\n",
                   global ? (whole ? "message/global" : "message/global-headers")
                          : (whole ? "message/rfc822" : "text/rfc822-headers"));
  if (eight_bit) m += "Content-Transfer-Encoding: 8bit\r\n";
  m += "\r\n" + returned;
  if (!returned.ends_with("\r\n")) m += "\r\n";
  m += fmt::format("\r\n--{}--\r\n", boundary);

  return m;
}

}  // namespace

NewMessage ComposeNotice(NoticeKind kind, const MessageInfo& original, const std::string& content,
                         const std::vector<StoredRecipient>& recipients, std::string id,
                         TimePoint now, std::optional<TimePoint> will_retry_until,
                         const NoticeOptions& options) {
  NoticeParts p{kind, original, recipients, will_retry_until, options};
  p.global = NeedsGlobal(original, recipients);
  const bool global = p.global;
  const std::string boundary = fmt::format("{}.{}/{}", id, p.action, options.hostname);
  const std::string& to = options.postmaster.empty() ? original.sender : options.postmaster;
  std::string m = NoticeHeader(p, id, to, boundary, now);
  const std::string human = HumanPart(p);
  m += fmt::format(
      "--{}\r\nContent-Description: Notification\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n{}\r\n",
      boundary, Is8Bit(human) ? "Content-Transfer-Encoding: 8bit\r\n" : "");
  m += human;
  const std::string report = ReportPart(p);
  m += fmt::format("--{}\r\nContent-Description: Delivery report\r\nContent-Type: {}\r\n{}\r\n",
                   boundary, global ? "message/global-delivery-status" : "message/delivery-status",
                   Is8Bit(report) ? "Content-Transfer-Encoding: 8bit\r\n" : "");
  m += report;
  m += OriginalPart(p, content, boundary);

  NewMessage n;
  n.id = std::move(id);
  n.arrival = now;
  n.sender = "";  // the null sender: a notice never causes a notice
  n.recipients = {{to, kNotifyNone, ""}};
  n.content = fmt::format("Received: by {} (danerelay) id {}; {}\r\n", options.hostname, n.id,
                          FormatRfc5322Date(now)) +
              m;
  if (options.sign) options.sign(n.content, n.id);
  n.client_address = "";
  n.client_helo = "";
  n.protocol = "local";
  // What the notice needs of its delivery (smtp_client.cpp): BODY=8BITMIME for any 8-bit part
  // (RFC 6152), SMTPUTF8 for a global notice (RFC 6531 §3.4; RFC 6533 §6: the UTF-8 fields
  // of a global report are meant for an SMTPUTF8 path).
  n.body_8bitmime = Is8Bit(m);
  n.smtputf8 = global;
  // RFC 8689 §5: the notice about a REQUIRETLS message is sent with REQUIRETLS itself, so it
  // too goes only over TLS that DANE or MTA-STS authenticates, to next hops that promise the
  // same. Like any notice it comes from <> and never bounces itself.
  n.requiretls = original.requiretls;
  return n;
}

std::optional<NewMessage> ComposeBounce(const MessageInfo& original, const std::string& content,
                                        const std::vector<StoredRecipient>& finished,
                                        std::string id, TimePoint now,
                                        const NoticeOptions& options) {
  std::vector<StoredRecipient> told;
  for (const auto& r : finished) {
    if (WantsNotice(NoticeKind::kFailure, original, r)) told.push_back(r);
  }
  if (told.empty()) return std::nullopt;
  return ComposeNotice(NoticeKind::kFailure, original, content, told, std::move(id), now,
                       std::nullopt, options);
}

}  // namespace danerelay::queue
