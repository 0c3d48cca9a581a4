#include "relay/smtp/smtp_reply.hpp"

#include <gtest/gtest.h>

namespace danerelay::relay {
namespace {

TEST(ReplyParserTest, MultilineEhloAcrossFeeds) {
  ReplyParser p;
  p.Feed("250-mx.example Hello\r\n250-PIPELINING\r\n250-SIZE 1000");
  EXPECT_FALSE(p.Next());
  p.Feed("\r\n250-starttls\r\n250 DSN\r\n220 next");
  auto r = p.Next();
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->code, 250);
  EXPECT_EQ((*r)->lines.size(), 5u);
  EXPECT_TRUE((*r)->HasExtension("PIPELINING"));
  EXPECT_TRUE((*r)->HasExtension("STARTTLS"));  // keywords are case-insensitive
  EXPECT_TRUE((*r)->HasExtension("SIZE"));
  EXPECT_FALSE((*r)->HasExtension("CHUNKING"));
  EXPECT_FALSE(p.Next());  // "220 next" has no line end yet
}

TEST(ReplyParserTest, ExtensionParametersAreUpperCaseWords) {
  ReplyParser p;
  p.Feed("250-mx.example\r\n250-auth  plain LOGIN\r\n250-AUTHX Y\r\n250 SIZE\r\n");
  auto r = p.Next();
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->ExtensionParams("AUTH"), (std::vector<std::string>{"PLAIN", "LOGIN"}));
  EXPECT_TRUE((*r)->ExtensionParams("SIZE").empty());
  EXPECT_TRUE((*r)->ExtensionParams("STARTTLS").empty());
}

TEST(ReplyParserTest, EnhancedStatus) {
  ReplyParser p;
  p.Feed("550 5.1.1 <bob@example.net>: unknown user\r\n451 Try later\r\n250 4.0.0 mismatch\r\n");
  auto a = p.Next();
  ASSERT_TRUE(a && *a);
  EXPECT_EQ((*a)->enhanced, "5.1.1");
  EXPECT_TRUE((*a)->Permanent());
  EXPECT_EQ((*a)->Text(), "550 5.1.1 <bob@example.net>: unknown user");
  auto b = p.Next();
  ASSERT_TRUE(b && *b);
  EXPECT_EQ((*b)->enhanced, "");
  EXPECT_TRUE((*b)->Transient());
  auto c = p.Next();
  ASSERT_TRUE(c && *c);
  EXPECT_EQ((*c)->enhanced, "");  // class disagrees with the reply code
}

TEST(ReplyParserTest, TextFromTheServerIsPrintable) {
  // Issue 9: reply text reaches logs, the attempts table and bounces; an inner CR, a NUL or an
  // 8-bit byte must not survive to split a header line or a log line there.
  ReplyParser p;
  std::string reply = "550 5.7.1 no\rX-Injected: 1\x01\xff";
  reply += '\0';
  reply += "z\r\n";
  p.Feed(reply);
  auto r = p.Next();
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->Text(), "550 5.7.1 no?X-Injected: 1?\?\?z");
}

TEST(ReplyParserTest, MalformedReplies) {
  for (const char* bad : {"hello\r\n", "25\r\n", "250x\r\n", "999 no\r\n", "250-a\r\n251 b\r\n"}) {
    ReplyParser p;
    p.Feed(bad);
    auto r = p.Next();
    if (r && *r) r = p.Next();  // the multiline case fails on its second line
    ASSERT_TRUE(r) << bad;
    EXPECT_FALSE(*r) << bad;
  }
}

}  // namespace
}  // namespace danerelay::relay
