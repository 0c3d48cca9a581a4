#include "relay/smtp/smtp_command.hpp"

#include <gtest/gtest.h>

namespace danerelay::relay {
namespace {

TEST(SplitCommandTest, VerbsAreCaseInsensitive) {
  EXPECT_EQ(SplitCommand("ehlo client.example").verb, Verb::kEhlo);
  EXPECT_EQ(SplitCommand("ehlo client.example").argument, "client.example");
  EXPECT_EQ(SplitCommand("StartTLS").verb, Verb::kStartTls);
  EXPECT_EQ(SplitCommand("DATA").argument, "");
  EXPECT_EQ(SplitCommand("MAILX FROM:<a@b>").verb, Verb::kUnknown);
  EXPECT_EQ(SplitCommand("").verb, Verb::kUnknown);
}

TEST(ParseMailTest, PathAndAllParameters) {
  auto m = ParseMail("FROM:<alice@example.org> SIZE=1234 BODY=8BITMIME RET=HDRS ENVID=a+2Bb+3Dc");
  ASSERT_TRUE(m) << m.error().text;
  EXPECT_EQ(m->sender, "alice@example.org");
  EXPECT_EQ(m->size, 1234u);
  EXPECT_TRUE(m->body_8bitmime);
  EXPECT_EQ(m->ret, queue::DsnRet::kHdrs);
  EXPECT_EQ(m->envid, "a+b=c");
}

TEST(ParseMailTest, NullSenderSpaceAfterColonAndSourceRoute) {
  auto null = ParseMail("FROM:<>");
  ASSERT_TRUE(null);
  EXPECT_EQ(null->sender, "");
  auto spaced = ParseMail("from: <a@b.example>");
  ASSERT_TRUE(spaced);
  EXPECT_EQ(spaced->sender, "a@b.example");
  auto routed = ParseMail("FROM:<@relay1.example,@relay2.example:a@b.example>");
  ASSERT_TRUE(routed);
  EXPECT_EQ(routed->sender, "a@b.example");
  auto quoted = ParseMail("FROM:<\"john doe\\>\"@example.org>");
  ASSERT_TRUE(quoted);
  EXPECT_EQ(quoted->sender, "\"john doe\\>\"@example.org");
}

TEST(ParseMailTest, RejectsBadSyntaxWithTheRightCodes) {
  struct Case {
    const char* arg;
    int code;
    const char* enhanced;
  };
  const Case cases[] = {
      {"FROM:alice@example.org", 501, "5.5.4"},       // no angle brackets
      {"TO:<alice@example.org>", 501, "5.5.4"},       // wrong keyword
      {"FROM:<alice@example.org", 501, "5.5.4"},      // unclosed
      {"FROM:<alice>", 501, "5.1.7"},                 // no domain
      {"FROM:<a..b@example.org>", 501, "5.1.7"},      // double dot
      {"FROM:<a@-bad-.example>", 501, "5.1.7"},       // label with hyphens at the ends
      {"FROM:<a@b.example> SIZE=abc", 501, "5.5.4"},  // SIZE not a number
      {"FROM:<a@b.example> SIZE=1 SIZE=2", 501, "5.5.4"},
      {"FROM:<a@b.example> BODY=BINARYMIME", 501, "5.5.4"},
      {"FROM:<a@b.example> RET=ALL", 501, "5.5.4"},
      {"FROM:<a@b.example> ENVID=a b", 555, "5.5.4"},  // "b" is an unknown parameter
      {"FROM:<a@b.example> ENVID=x=y", 501, "5.5.4"},  // '=' must be encoded
      {"FROM:<a@b.example> ENVID=+4", 501, "5.5.4"},   // truncated hex escape
      {"FROM:<a@b.example> XFOO=1", 555, "5.5.4"},
      {"FROM:<a@b.example>SIZE=1", 501, "5.5.4"},  // no space before the parameter
      {"FROM:<jörg@example.org>", 553, "5.6.7"},   // UTF-8 without SMTPUTF8
  };
  for (const auto& c : cases) {
    auto m = ParseMail(c.arg);
    ASSERT_FALSE(m) << c.arg;
    EXPECT_EQ(m.error().code, c.code) << c.arg;
    EXPECT_EQ(m.error().enhanced, c.enhanced) << c.arg;
  }
}

TEST(ParseMailTest, Utf8WithSmtputf8) {
  auto m = ParseMail("FROM:<jörg@bücher.example> SMTPUTF8");
  ASSERT_TRUE(m) << m.error().text;
  EXPECT_TRUE(m->smtputf8);
  EXPECT_EQ(m->sender, "jörg@bücher.example");
}

TEST(ParseRcptTest, DsnParameters) {
  auto r = ParseRcpt("TO:<bob@example.net> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;bob+2Bx@example.net",
                     false);
  ASSERT_TRUE(r) << r.error().text;
  EXPECT_EQ(r->recipient, "bob@example.net");
  EXPECT_EQ(r->notify, queue::kNotifySuccess | queue::kNotifyDelay);
  EXPECT_EQ(r->orcpt, "rfc822;bob+x@example.net");
  auto never = ParseRcpt("TO:<bob@example.net> NOTIFY=NEVER", false);
  ASSERT_TRUE(never);
  EXPECT_EQ(never->notify, queue::kNotifyNever);
}

TEST(ParseRcptTest, Rejections) {
  EXPECT_EQ(ParseRcpt("TO:<bob@example.net> NOTIFY=NEVER,SUCCESS", false).error().code, 501);
  EXPECT_EQ(ParseRcpt("TO:<bob@example.net> NOTIFY=SOMETIMES", false).error().code, 501);
  EXPECT_EQ(ParseRcpt("TO:<bob@example.net> ORCPT=bob@example.net", false).error().code, 501);
  EXPECT_EQ(ParseRcpt("TO:<>", false).error().enhanced, "5.1.3");
  EXPECT_EQ(ParseRcpt("TO:<postmaster>", false).error().enhanced, "5.1.3");
  EXPECT_EQ(ParseRcpt("TO:<bøb@example.net>", false).error().code, 553);
  EXPECT_TRUE(ParseRcpt("TO:<bøb@example.net>", true));
  EXPECT_TRUE(ParseRcpt("TO:<bob@[192.0.2.1]>", false));
}

TEST(DecodeXtextTest, Cases) {
  EXPECT_EQ(DecodeXtext("abc"), "abc");
  EXPECT_EQ(DecodeXtext("a+20b"), "a b");
  EXPECT_FALSE(DecodeXtext("a+2"));
  EXPECT_FALSE(DecodeXtext("a+zz"));
  EXPECT_FALSE(DecodeXtext("a b"));
}

}  // namespace
}  // namespace danerelay::relay
