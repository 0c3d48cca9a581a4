#include "queue/retry.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "queue/message_test_util.hpp"
#include "queue/notice.hpp"

namespace danerelay::queue {
namespace {

using std::chrono::hours;
using std::chrono::seconds;

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

// Issue 21: whether the last reply is the remote's travels with the recipient into its notice,
// for an attempt and for a recipient that expires with its message.
TEST(RetryTest, WhetherTheReplyIsTheRemotesGoesIntoTheBounce) {
  std::mt19937 rng(1);
  MessageInfo m = OneRecipient("alice@example.org", kNotifyNone);
  RecipientUpdate refused{0,       RecipientState::kFailed, std::nullopt,
                          "5.1.1", "550 5.1.1 no",          "mx.example.net"};
  refused.reply_is_remote = true;
  PassOutcome out = SchedulePass(m, {refused}, kT0, RetryOptions{}, rng);
  ASSERT_EQ(out.bounce.size(), 1u);
  EXPECT_TRUE(out.bounce[0].last_reply_remote);
  PassOutcome local = SchedulePass(m, {Deferred475()}, kT0 + hours(200), RetryOptions{}, rng);
  ASSERT_EQ(local.bounce.size(), 1u);
  EXPECT_FALSE(local.bounce[0].last_reply_remote);
  StoredRecipient held;
  held.index = 1;
  held.address = "carol@example.com";
  held.state = RecipientState::kHeld;
  held.last_reply = "450 4.2.0 try later";
  held.last_remote = "mx.example.com";
  held.last_reply_remote = true;
  PassOutcome late =
      SchedulePass(m, {Deferred475()}, kT0 + hours(200), RetryOptions{}, rng, {held});
  ASSERT_EQ(late.updates.size(), 2u);
  EXPECT_TRUE(late.updates[1].reply_is_remote);
  ASSERT_EQ(late.bounce.size(), 2u);
  EXPECT_TRUE(late.bounce[1].last_reply_remote);
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
