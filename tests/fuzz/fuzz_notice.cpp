// Fuzz target: the delivery status notification composer (queue/notice.cpp), with the strings
// that come from outside (ENVID, ORCPT, remote reply and host, the message itself) taken from
// the input; addresses only as the RCPT parser would have let them in. Invariants: the notice
// has only CRLF line ends; its delivery-status part holds only RFC 3464 fields, one per line,
// none over 998 characters; its size is bounded when the original comes back as headers.
#include <cstdint>
#include <set>
#include <string>

#include "queue/notice.hpp"
#include "relay/smtp/smtp_command.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

using danerelay::fuzz::Violated;

std::string Address(const std::string& text, bool utf8) {
  auto r = danerelay::relay::ParseRcpt("TO:<" + text + ">", utf8);
  return r ? r->recipient : "bob@example.net";
}

void CheckStatusPart(std::string_view notice, std::string_view boundary) {
  // RFC 3464's 7-bit part, or RFC 6533's global one (possibly labelled 8bit).
  const std::string_view start = "Content-Description: Delivery report\r\n";
  auto begin = notice.find(start);
  if (begin == std::string_view::npos) Violated("no delivery-status part", notice);
  begin = notice.find("\r\n\r\n", begin);
  if (begin == std::string_view::npos) Violated("delivery-status part without a body", notice);
  begin += 4;
  const auto end = notice.find("\r\n--" + std::string(boundary), begin);
  if (end == std::string_view::npos) Violated("delivery-status part not closed", notice);
  static const std::set<std::string_view> kFields = {"Reporting-MTA",
                                                     "X-Danerelay-Queue-ID",
                                                     "Original-Envelope-Id",
                                                     "Arrival-Date",
                                                     "Final-Recipient",
                                                     "Original-Recipient",
                                                     "Action",
                                                     "Status",
                                                     "Remote-MTA",
                                                     "Diagnostic-Code",
                                                     "Last-Attempt-Date",
                                                     "Will-Retry-Until"};
  std::size_t pos = begin;
  while (pos < end) {
    auto eol = notice.find("\r\n", pos);
    if (eol > end) eol = end;
    const std::string_view line = notice.substr(pos, eol - pos);
    if (line.size() > 998) Violated("status line over 998 characters", line);
    if (!line.empty() && !kFields.contains(line.substr(0, line.find(':')))) {
      Violated("unknown field in the delivery-status part", line);
    }
    pos = eol + 2;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace danerelay::queue;
  danerelay::fuzz::Input in(data, size);
  const std::uint8_t mode = in.Byte();
  const bool utf8 = mode & 1;
  MessageInfo m;
  m.id = "Q1";
  m.arrival = TimePoint(std::chrono::seconds(1795337301));
  m.sender = Address(in.Field(), utf8);
  m.smtputf8 = utf8;
  m.dsn_ret = mode & 2 ? DsnRet::kHdrs : DsnRet::kUnspecified;
  m.dsn_envid = in.Field();
  StoredRecipient r;
  r.address = Address(in.Field(), utf8);
  r.orcpt = in.Field();
  r.last_status = in.Field();
  r.last_reply = in.Field();
  r.last_remote = in.Field();
  r.last_reply_remote = mode & 16;
  r.notify = kNotifyNone;
  if (mode & 4) r.last_attempt = m.arrival;
  m.recipients = {r};
  const std::string content(in.Rest());
  NoticeOptions options("relay.test");
  options.return_size_limit = 1 + (mode >> 3) * 64;
  const NoticeKind kind = mode & 8 ? NoticeKind::kDelay : NoticeKind::kFailure;
  const NewMessage n = ComposeNotice(kind, m, content, {r}, "N1", m.arrival, m.arrival, options);
  const std::string_view text = n.content;
  // The original may come back whole (it is the sender's own text); everything before it is ours.
  const auto original = text.find("Content-Description: Undelivered");
  if (original == std::string_view::npos) Violated("no original part", text);
  if (!danerelay::fuzz::OnlyCrlf(text.substr(0, original))) Violated("notice line ends", text);
  CheckStatusPart(text,
                  kind == NoticeKind::kDelay ? "N1.delayed/relay.test" : "N1.failed/relay.test");
  if ((text.find("text/rfc822-headers") != std::string_view::npos ||
       text.find("message/global-headers") != std::string_view::npos) &&
      text.size() > options.return_size_limit + 10000) {
    Violated("headers-only notice larger than the limit", text.substr(0, 300));
  }
  return 0;
}
