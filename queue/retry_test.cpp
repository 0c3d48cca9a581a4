#include "queue/retry.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "queue/notice.hpp"

namespace danerelay::queue {
namespace {

using std::chrono::hours;
using std::chrono::seconds;

const TimePoint kT0 = TimePoint(seconds(1'795'337'301));

MessageInfo OneRecipient(std::string sender, unsigned notify) {
  MessageInfo m;
  m.id = "M1";
  m.sender = std::move(sender);
  m.arrival = kT0;
  StoredRecipient r;
  r.index = 0;
  r.address = "bob@example.net";
  r.state = RecipientState::kAttempting;
  r.notify = notify;
  r.orcpt = "rfc822;bob@example.net";
  m.recipients.push_back(r);
  return m;
}

RecipientUpdate Deferred475() {
  return {0,
          RecipientState::kDeferred,
          std::nullopt,
          "4.7.5",
          "Server certificate not verified (no matching DANE TLSA records)",
          "mx.example.net"};
}

// The whole life of a recipient whose MX keeps failing DANE, walked through with a fake clock.
struct Walk {
  std::vector<seconds> delays;
  std::vector<TimePoint> warned_at;
  std::vector<StoredRecipient> bounced;
  TimePoint end;
  RecipientState final_state = RecipientState::kDeferred;
};

Walk WalkFiveDays(MessageInfo m, const RetryOptions& o) {
  std::mt19937 rng(7);
  Walk w;
  TimePoint now = kT0;
  for (int pass_no = 0; pass_no < 10000; ++pass_no) {
    PassOutcome pass = SchedulePass(m, {Deferred475()}, now, o, rng);
    const RecipientUpdate& u = pass.updates.at(0);
    StoredRecipient& r = m.recipients[0];
    r.attempts += 1;
    r.delay_warned = r.delay_warned || u.delay_warned;
    if (!pass.warn.empty()) w.warned_at.push_back(now);
    w.bounced.insert(w.bounced.end(), pass.bounce.begin(), pass.bounce.end());
    if (u.state != RecipientState::kDeferred) {
      w.final_state = u.state;
      w.end = now;
      break;
    }
    w.delays.push_back(std::chrono::duration_cast<seconds>(*u.next_attempt - now));
    now = *u.next_attempt;
  }
  return w;
}

TEST(RetryTest, FiveDaysOfBackoffDelayWarningExpiryAndBounce) {
  const RetryOptions o;  // 300 s doubling to 4000 s, 5 days, warning after 4 h
  const Walk w = WalkFiveDays(OneRecipient("alice@example.org", kNotifyNone), o);
  ASSERT_GE(w.delays.size(), 5u);
  // Backoff: 300, 600, 1200, 2400, then the 4000 s ceiling, each with at most +-10 % jitter
  // (never below the minimum).
  const double expected[] = {300, 600, 1200, 2400, 4000};
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_GE(w.delays[i].count(), std::max(300.0, expected[i] * 0.9) - 1) << i;
    EXPECT_LE(w.delays[i].count(), expected[i] * 1.1 + 1) << i;
  }
  for (size_t i = 5; i + 1 < w.delays.size(); ++i) {
    EXPECT_GE(w.delays[i].count(), 3599) << i;
    EXPECT_LE(w.delays[i].count(), 4000) << i;  // the ceiling is a ceiling
  }
  // One delay warning, at the first attempt at least 4 hours after arrival.
  ASSERT_EQ(w.warned_at.size(), 1u);
  EXPECT_GE(w.warned_at[0] - kT0, hours(4));
  EXPECT_LT(w.warned_at[0] - kT0, hours(4) + seconds(4400));
  // A last attempt exactly at expiry, then expired with the last transient status kept.
  EXPECT_EQ(w.final_state, RecipientState::kExpired);
  EXPECT_EQ(w.end, kT0 + hours(120));
  ASSERT_EQ(w.bounced.size(), 1u);
  EXPECT_EQ(w.bounced[0].last_status, "4.7.5");
  EXPECT_EQ(w.bounced[0].last_remote, "mx.example.net");
}

TEST(RetryTest, NotifyAndTheNullSenderDecideWhoIsTold) {
  const RetryOptions o;
  const Walk never = WalkFiveDays(OneRecipient("alice@example.org", kNotifyNever), o);
  EXPECT_TRUE(never.warned_at.empty());
  EXPECT_TRUE(never.bounced.empty());
  EXPECT_EQ(never.final_state, RecipientState::kExpired);  // still expires
  const Walk null_sender = WalkFiveDays(OneRecipient("", kNotifyNone), o);
  EXPECT_TRUE(null_sender.warned_at.empty());
  EXPECT_TRUE(null_sender.bounced.empty());
  const Walk delay_only = WalkFiveDays(OneRecipient("alice@example.org", kNotifyDelay), o);
  EXPECT_EQ(delay_only.warned_at.size(), 1u);
  EXPECT_TRUE(delay_only.bounced.empty());
  const Walk failure_only = WalkFiveDays(OneRecipient("alice@example.org", kNotifyFailure), o);
  EXPECT_TRUE(failure_only.warned_at.empty());
  EXPECT_EQ(failure_only.bounced.size(), 1u);
  RetryOptions no_warning;
  no_warning.delay_warning = seconds(0);
  EXPECT_TRUE(WalkFiveDays(OneRecipient("a@b.example", kNotifyNone), no_warning).warned_at.empty());
}

TEST(RetryTest, PermanentFailureBouncesAtOnce) {
  std::mt19937 rng(1);
  const MessageInfo m = OneRecipient("alice@example.org", kNotifyNone);
  PassOutcome pass = SchedulePass(
      m, {{0, RecipientState::kFailed, std::nullopt, "5.1.1", "550 5.1.1 unknown user", "mx"}},
      kT0 + seconds(10), RetryOptions{}, rng);
  EXPECT_EQ(pass.updates[0].state, RecipientState::kFailed);
  ASSERT_EQ(pass.bounce.size(), 1u);
  EXPECT_EQ(pass.bounce[0].last_status, "5.1.1");
}

TEST(RetryTest, SuccessIsReportedOnlyWhenAskedAndNotPassedOn) {
  std::mt19937 rng(1);
  const RecipientUpdate delivered{
      0, RecipientState::kDelivered, std::nullopt, "2.0.0", "250 2.0.0 Ok", "mx.example.net"};
  const MessageInfo asked = OneRecipient("alice@example.org", kNotifySuccess | kNotifyFailure);
  EXPECT_EQ(SchedulePass(asked, {delivered}, kT0, RetryOptions{}, rng).relayed.size(), 1u);
  RecipientUpdate passed_on = delivered;
  passed_on.remote_dsn = true;  // the next hop reports success itself
  EXPECT_TRUE(SchedulePass(asked, {passed_on}, kT0, RetryOptions{}, rng).relayed.empty());
  const MessageInfo silent = OneRecipient("alice@example.org", kNotifyNone);
  EXPECT_TRUE(SchedulePass(silent, {delivered}, kT0, RetryOptions{}, rng).relayed.empty());
}

TEST(NoticeTest, BounceForADaneFailure) {
  MessageInfo m = OneRecipient("alice@example.org", kNotifyNone);
  m.dsn_envid = "env-7";
  StoredRecipient r = m.recipients[0];
  r.last_status = "4.7.5";
  r.last_reply = "Server certificate not verified (no matching DANE TLSA records)";
  r.last_remote = "mx.example.net";
  r.last_attempt = kT0 + hours(120);
  const std::string original = "Subject: hello\r\nFrom: alice@example.org\r\n\r\nBody\r\n";
  const NewMessage b = ComposeNotice(NoticeKind::kFailure, m, original, {r}, "B1", kT0 + hours(120),
                                     std::nullopt, NoticeOptions{"relay.test"});
  EXPECT_EQ(b.sender, "");
  ASSERT_EQ(b.recipients.size(), 1u);
  EXPECT_EQ(b.recipients[0].address, "alice@example.org");
  using ::testing::HasSubstr;
  EXPECT_THAT(b.content, HasSubstr("report-type=delivery-status"));
  EXPECT_THAT(b.content, HasSubstr("certificate did not match the TLSA records"));
  EXPECT_THAT(b.content, HasSubstr("Reporting-MTA: dns; relay.test\r\n"));
  EXPECT_THAT(b.content, HasSubstr("Original-Envelope-Id: env-7\r\n"));
  EXPECT_THAT(b.content, HasSubstr("Arrival-Date: Sun, 22 Nov 2026 08:48:21 +0000\r\n"));
  EXPECT_THAT(b.content,
              HasSubstr("Final-Recipient: rfc822; bob@example.net\r\n"
                        "Original-Recipient: rfc822; bob@example.net\r\n"
                        "Action: failed\r\nStatus: 4.7.5\r\n"
                        "Remote-MTA: dns; mx.example.net\r\n"
                        "Diagnostic-Code: X-danerelay; Server certificate not verified"));
  EXPECT_THAT(b.content, HasSubstr("Last-Attempt-Date: Fri, 27 Nov 2026 08:48:21 +0000\r\n"));
  EXPECT_THAT(b.content, HasSubstr("Content-Type: message/rfc822\r\n\r\n" + original));
}

TEST(NoticeTest, HeadersOnlyWhenAskedOrLarge) {
  MessageInfo m = OneRecipient("alice@example.org", kNotifyNone);
  m.dsn_ret = DsnRet::kHdrs;
  StoredRecipient r = m.recipients[0];
  r.last_status = "5.1.1";
  r.last_reply = "550 5.1.1 no such user";
  const std::string original = "Subject: secret\r\n\r\nDo not return this body\r\n";
  const NewMessage hdrs = ComposeNotice(NoticeKind::kFailure, m, original, {r}, "B2", kT0,
                                        std::nullopt, {"relay.test"});
  EXPECT_THAT(hdrs.content, ::testing::HasSubstr("Content-Type: text/rfc822-headers"));
  EXPECT_THAT(hdrs.content, ::testing::Not(::testing::HasSubstr("Do not return this body")));
  EXPECT_THAT(hdrs.content, ::testing::HasSubstr("Diagnostic-Code: smtp; 550 5.1.1 no such user"));
  m.dsn_ret = DsnRet::kUnspecified;
  const std::string big = "Subject: big\r\n\r\n" + std::string(60000, 'x') + "\r\n";
  const NewMessage large =
      ComposeNotice(NoticeKind::kFailure, m, big, {r}, "B3", kT0, std::nullopt, {"relay.test"});
  EXPECT_THAT(large.content, ::testing::HasSubstr("Content-Type: text/rfc822-headers"));
  EXPECT_LT(large.content.size(), 5000u);
}

TEST(NoticeTest, RequireTlsMessagesComeBackWithoutTheirBody) {
  // RFC 8689 §5: the notice does not travel under the same protection.
  MessageInfo m = OneRecipient("alice@example.org", kNotifyNone);
  m.requiretls = true;
  StoredRecipient r = m.recipients[0];
  r.last_status = "5.7.30";
  r.last_reply = "REQUIRETLS: mx.example.net does not offer REQUIRETLS";
  const std::string original = "Subject: private\r\n\r\nThe confidential body\r\n";
  const NewMessage n = ComposeNotice(NoticeKind::kFailure, m, original, {r}, "B5", kT0,
                                     std::nullopt, {"relay.test"});
  EXPECT_THAT(n.content, ::testing::HasSubstr("Content-Type: text/rfc822-headers"));
  EXPECT_THAT(n.content, ::testing::HasSubstr("Subject: private"));
  EXPECT_THAT(n.content, ::testing::Not(::testing::HasSubstr("The confidential body")));
  EXPECT_THAT(n.content, ::testing::HasSubstr("Status: 5.7.30"));
}

TEST(NoticeTest, LargeMessageWithoutABlankLineComesBackBounded) {
  // Issue 9: a message without a blank line is all header; it used to come back whole.
  MessageInfo m = OneRecipient("alice@example.org", kNotifyNone);
  StoredRecipient r = m.recipients[0];
  r.last_status = "5.1.1";
  std::string all_header;
  for (int i = 0; i < 4000; ++i) all_header += "X-Filler-" + std::to_string(i) + ": yyyyyyyy\r\n";
  const NewMessage n = ComposeNotice(NoticeKind::kFailure, m, all_header, {r}, "B4", kT0,
                                     std::nullopt, {"relay.test"});
  EXPECT_THAT(n.content, ::testing::HasSubstr("Content-Type: text/rfc822-headers"));
  EXPECT_LT(n.content.size(), 50000u + 5000u);
  EXPECT_THAT(n.content, ::testing::HasSubstr("X-Filler-0: yyyyyyyy\r\n"));
  // Cut at a line end: the part ends with a whole header line, then the closing boundary.
  EXPECT_THAT(n.content, ::testing::ContainsRegex("yyyyyyyy\r\n\r\n--B4.failed/relay.test--\r\n$"));
}

TEST(NoticeTest, StringsFromOutsideCannotAddHeadersOrParts) {
  // Issue 9: ENVID and ORCPT stored before they were checked at MAIL/RCPT, and a remote reply
  // with an inner CR, must not put lines of their own into the delivery-status part.
  MessageInfo m = OneRecipient("alice@example.org", kNotifyNone);
  m.dsn_envid = "e\r\nX-Injected: 1\r\n--boundary\r\n.\r\n";
  StoredRecipient r = m.recipients[0];
  r.orcpt = "rfc822;b\r\nX-Orcpt-Injected: 1";
  r.last_status = "5.1.1";
  r.last_reply = "550 5.1.1 no\rX-Reply-Injected: 1\n\xff";
  r.last_remote = "mx\r\nX-Remote-Injected: 1";
  const NewMessage n = ComposeNotice(NoticeKind::kFailure, m, "Subject: x\r\n\r\ny\r\n", {r}, "B5",
                                     kT0, std::nullopt, {"relay.test"});
  for (const char* injected : {"\nX-Injected", "\nX-Orcpt-Injected", "\nX-Reply-Injected",
                               "\nX-Remote-Injected", "\n.\r", "\n--boundary", "\r\r", "\xff"}) {
    EXPECT_EQ(n.content.find(injected), std::string::npos) << injected;
  }
  EXPECT_THAT(n.content, ::testing::HasSubstr(
                             "Diagnostic-Code: smtp; 550 5.1.1 no?X-Reply-Injected: 1?\?\r\n"));
  EXPECT_THAT(n.content, ::testing::HasSubstr(
                             "Original-Envelope-Id: e?\?X-Injected: 1?\?--boundary?\?.?\?\r\n"));
}

TEST(NoticeTest, Utf8OriginalRecipientStaysSevenBit) {
  // RFC 6533 §3: in a message/delivery-status a utf-8 address is in its xtext form.
  MessageInfo m = OneRecipient("alice@example.org", kNotifyNone);
  StoredRecipient r = m.recipients[0];
  r.orcpt =
      "utf-8;user@b\xC3\xBC"
      "cher.example";
  r.last_status = "5.1.1";
  r.last_reply = "550 5.1.1 no";
  const NewMessage n = ComposeNotice(NoticeKind::kFailure, m, "Subject: x\r\n\r\ny\r\n", {r}, "B6",
                                     kT0, std::nullopt, {"relay.test"});
  EXPECT_THAT(n.content,
              ::testing::HasSubstr("Original-Recipient: utf-8; user@b\\x{FC}cher.example\r\n"));
}

TEST(NoticeTest, DelayWarning) {
  MessageInfo m = OneRecipient("alice@example.org", kNotifyDelay);
  StoredRecipient r = m.recipients[0];
  r.last_status = "4.4.1";
  r.last_reply = "connect to mx.example.net[192.0.2.1]:25: Connection refused";
  const NewMessage w = ComposeNotice(NoticeKind::kDelay, m, "Subject: x\r\n\r\ny\r\n", {r}, "W1",
                                     kT0 + hours(4), kT0 + hours(120), {"relay.test"});
  EXPECT_THAT(w.content, ::testing::HasSubstr("Action: delayed\r\nStatus: 4.4.1\r\n"));
  EXPECT_THAT(w.content, ::testing::HasSubstr("Will-Retry-Until: Fri, 27 Nov 2026 08:48:21 +0000"));
  EXPECT_THAT(w.content, ::testing::HasSubstr("Subject: Delayed Mail"));
}

TEST(NoticeTest, ToHeaderWrittenAsTheOptionsSay) {
  MessageInfo m = OneRecipient("alice@example.org", kNotifyFailure);
  m.sender = "info@caf\xc3\xa9.example";
  m.smtputf8 = true;
  StoredRecipient r = m.recipients[0];
  r.last_status = "5.1.1";
  NoticeOptions o{"relay.test"};
  const NewMessage plain = ComposeNotice(NoticeKind::kFailure, m, "Subject: x\r\n\r\ny\r\n", {r},
                                         "N1", kT0, std::nullopt, o);
  EXPECT_THAT(plain.content, ::testing::HasSubstr("To: <info@caf\xc3\xa9.example>\r\n"));
  o.header_address = [](const std::string&) { return std::string("info@xn--caf-dma.example"); };
  const NewMessage mapped = ComposeNotice(NoticeKind::kFailure, m, "Subject: x\r\n\r\ny\r\n", {r},
                                          "N2", kT0, std::nullopt, o);
  EXPECT_THAT(mapped.content, ::testing::HasSubstr("To: <info@xn--caf-dma.example>\r\n"));
  EXPECT_EQ(mapped.recipients[0].address, m.sender);  // the envelope is the relay's to write
}

// A recipient that was not in the pass (held, or due later) expires with the message when the
// pass ends after the message's lifetime: one bounce lists both, and the held one keeps its
// last status and attempt count.
TEST(RetryTest, OnePassExpiresTheRestOfAnExpiredMessageInTheSameBounce) {
  const RetryOptions options;
  std::mt19937 rng(1);
  const MessageInfo m = OneRecipient("alice@example.org", kNotifyNone);
  StoredRecipient held;
  held.index = 1;
  held.address = "carol@example.com";
  held.state = RecipientState::kHeld;
  held.last_status = "4.4.1";
  held.last_reply = "connection refused";
  held.attempts = 3;
  const std::vector<StoredRecipient> rest = {held};

  // Before the lifetime ends the rest is left alone.
  PassOutcome early = SchedulePass(m, {Deferred475()}, kT0 + hours(1), options, rng, rest);
  ASSERT_EQ(early.updates.size(), 1u);
  EXPECT_TRUE(early.bounce.empty());

  PassOutcome late =
      SchedulePass(m, {Deferred475()}, kT0 + options.max_lifetime, options, rng, rest);
  ASSERT_EQ(late.updates.size(), 2u);
  EXPECT_EQ(late.updates[0].state, RecipientState::kExpired);
  EXPECT_EQ(late.updates[1].state, RecipientState::kExpired);
  EXPECT_EQ(late.updates[1].status, "4.4.1");
  EXPECT_FALSE(late.updates[1].attempted);
  ASSERT_EQ(late.bounce.size(), 2u);
  EXPECT_EQ(late.bounce[1].address, "carol@example.com");
  EXPECT_EQ(late.bounce[1].attempts, 3);
}

}  // namespace
}  // namespace danerelay::queue
