#include "relay/reply_rules.hpp"

#include <gtest/gtest.h>

namespace danerelay::relay {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

ReplyMatcher Make(const std::vector<ReplyRule>& rules = {}) {
  auto m = ReplyMatcher::Make(rules);
  EXPECT_TRUE(m) << m.error();
  return *m;
}

// Replies as the providers send them (lines joined by spaces, as Reply::Text() makes them).
TEST(ReplyRulesTest, TheShippedRulesKnowTheProvidersThrottles) {
  const ReplyMatcher m = Make();
  const auto* gmail = m.Match(
      "421 4.7.28 [192.0.2.1 4] Our system has detected an unusual rate of 4.7.28 unsolicited "
      "mail originating from your IP address. ... temporarily 4.7.28 rate limited. - gsmtp");
  ASSERT_NE(gmail, nullptr);
  EXPECT_EQ(gmail->suspend, minutes(30));
  // One busy mailbox is no reason to stop mail to the whole site.
  EXPECT_EQ(m.Match("450 4.2.1 The user you are trying to contact is receiving mail at a rate "
                    "that 4.2.1 prevents additional messages from being delivered."),
            nullptr);
  ASSERT_NE(m.Match("452 4.3.2 Connection rate limit exceeded."), nullptr);
  ASSERT_NE(m.Match("451 4.7.500 Server busy. Please try again later from [192.0.2.1]. (S77714)"),
            nullptr);
}

TEST(ReplyRulesTest, OrdinaryRefusalsMatchNothing) {
  const ReplyMatcher m = Make();
  EXPECT_EQ(m.Match("450 4.2.0 <x@example.net>: Recipient address rejected: Mailbox busy"),
            nullptr);
  EXPECT_EQ(m.Match("550 5.1.1 <x@example.net>: User unknown"), nullptr);
  EXPECT_EQ(m.Match("421 4.3.2 Service shutting down"), nullptr);
  // The code must lead: a text that quotes one is not one.
  EXPECT_EQ(m.Match("550 5.7.1 we saw 421 4.7.28 from you before"), nullptr);
}

// An address in the reply is the sender's choice, not the server's word.
TEST(ReplyRulesTest, EchoedAddressesMatchNothing) {
  auto m = ReplyMatcher::Make({{"rate limit", std::chrono::minutes(10)}});
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->Match("550 5.1.1 <\"rate limit\"@victim.example>: User unknown"), nullptr);
  EXPECT_NE(m->Match("451 4.7.0 <x@victim.example>: rate limit exceeded"), nullptr);
}

TEST(ReplyRulesTest, TheOperatorsRulesComeFirstAndZeroTurnsAShippedOneOff) {
  const ReplyMatcher m = Make({{"^421 4\\.7\\.28 .*rate LIMITED", seconds(0)},
                               {"too many (connections|messages)", seconds(20)}});
  const auto* off = m.Match("421 4.7.28 you are rate limited");
  ASSERT_NE(off, nullptr);
  EXPECT_EQ(off->suspend, seconds(0));
  const auto* mine = m.Match("421 4.7.0 mx.example Error: too many connections from 192.0.2.1");
  ASSERT_NE(mine, nullptr);
  EXPECT_EQ(mine->suspend, seconds(20));
}

TEST(ReplyRulesTest, OnlyTheFirstBytesOfALongReplyAreSearched) {
  const ReplyMatcher m = Make({{"needle", seconds(1)}});
  const std::string filler(ReplyMatcher::kMaxReplyText, 'x');
  EXPECT_NE(m.Match("421 needle " + filler), nullptr);
  EXPECT_EQ(m.Match("421 " + filler + " needle"), nullptr);
}

TEST(ReplyRulesTest, BadPatternsAreNamed) {
  EXPECT_EQ(CheckReplyPattern("^421 4\\.7\\.28"), "");
  EXPECT_NE(CheckReplyPattern("(unclosed"), "");
  EXPECT_NE(CheckReplyPattern("[z-a]"), "");
  EXPECT_NE(CheckReplyPattern(""), "");
  const auto m = ReplyMatcher::Make({{"(unclosed", seconds(1)}});
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().find("(unclosed"), std::string::npos) << m.error();
}

}  // namespace
}  // namespace danerelay::relay
