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

TEST(ParseMailTest, RequireTls) {
  auto m = ParseMail("FROM:<a@b.example> REQUIRETLS");
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->requiretls);
  EXPECT_FALSE(ParseMail("FROM:<a@b.example>")->requiretls);
  EXPECT_FALSE(ParseMail("FROM:<a@b.example> REQUIRETLS=YES"));
  EXPECT_FALSE(ParseMail("FROM:<a@b.example> REQUIRETLS REQUIRETLS"));
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
      // Issue 9: xtext that decodes to CR LF (header injection into a bounce), NUL, 8-bit.
      {"FROM:<a@b.example> ENVID=x+0D+0AX-Injected:+20yes", 501, "5.5.4"},
      {"FROM:<a@b.example> ENVID=x+00", 501, "5.5.4"},
      {"FROM:<a@b.example> ENVID=x+FF", 501, "5.5.4"},
      {"FROM:<a@b.example> ENVID=x+7F", 501, "5.5.4"},
      // Malformed UTF-8 under SMTPUTF8 (RFC 6531 §3.4): lone continuation, overlong "/",
      // a surrogate, a truncated sequence, a byte that never occurs.
      {"FROM:<j\x80rg@example.org> SMTPUTF8", 553, "5.6.7"},
      {"FROM:<j\xC0\xAFrg@example.org> SMTPUTF8", 553, "5.6.7"},
      {"FROM:<j\xED\xA0\x80rg@example.org> SMTPUTF8", 553, "5.6.7"},
      {"FROM:<jrg@example.\xE2\x82> SMTPUTF8", 553, "5.6.7"},
      {"FROM:<j\xFFrg@example.org> SMTPUTF8", 553, "5.6.7"},
      // An empty local part after a source route.
      {"FROM:<@relay.example:@example.org>", 501, "5.1.7"},
  };
  for (const auto& c : cases) {
    auto m = ParseMail(c.arg);
    ASSERT_FALSE(m) << c.arg;
    EXPECT_EQ(m.error().code, c.code) << c.arg;
    EXPECT_EQ(m.error().enhanced, c.enhanced) << c.arg;
  }
}

TEST(ParseMailTest, AuthParameterRfc4954) {
  // RFC 4954 §5: AUTH=<> or AUTH=xtext(mailbox), which a server offering AUTH MUST accept.
  auto empty = ParseMail("FROM:<a@b.example> AUTH=<>");
  ASSERT_TRUE(empty) << empty.error().text;
  ASSERT_TRUE(empty->auth);
  EXPECT_EQ(*empty->auth, "");
  auto box = ParseMail("FROM:<a@b.example> auth=a+2Bx@b.example SIZE=10");
  ASSERT_TRUE(box) << box.error().text;
  ASSERT_TRUE(box->auth);
  EXPECT_EQ(*box->auth, "a+x@b.example");
  EXPECT_FALSE(ParseMail("FROM:<a@b.example>")->auth);
  EXPECT_EQ(ParseMail("FROM:<a@b.example> AUTH").error().code, 501);
  EXPECT_EQ(ParseMail("FROM:<a@b.example> AUTH=<> AUTH=<>").error().code, 501);
  EXPECT_EQ(ParseMail("FROM:<a@b.example> AUTH=a+0D+0A@b.example").error().code, 501);
  EXPECT_EQ(ParseMail("FROM:<a@b.example> AUTH=not-a-mailbox").error().code, 501);
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

TEST(ParseRcptTest, Utf8OrcptRfc6533) {
  // RFC 6533 §3: a server offering DSN and SMTPUTF8 MUST accept the utf-8 address type. Postfix
  // xtext-encodes the UTF-8 bytes (RFC 3461 "+XX"); utf-8-addr-xtext uses "\x{HEXPOINT}";
  // utf-8-addr-unitext carries UTF-8 as it is. All three are stored as the decoded address.
  auto postfix = ParseRcpt(
      "TO:<user@b\xC3\xBC"
      "cher.example> ORCPT=utf-8;user@b+C3+BCcher.example",
      true);
  ASSERT_TRUE(postfix) << postfix.error().text;
  EXPECT_EQ(postfix->orcpt,
            "utf-8;user@b\xC3\xBC"
            "cher.example");
  auto xtext = ParseRcpt("TO:<user@example.net> ORCPT=utf-8;user@b\\x{FC}cher.example", false);
  ASSERT_TRUE(xtext) << xtext.error().text;
  EXPECT_EQ(xtext->orcpt,
            "utf-8;user@b\xC3\xBC"
            "cher.example");
  auto unitext = ParseRcpt(
      "TO:<user@example.net> ORCPT=UTF-8;j\xC3\xB6rg\\x{2B}1@b\xC3\xBC"
      "cher.example",
      true);
  ASSERT_TRUE(unitext) << unitext.error().text;
  EXPECT_EQ(unitext->orcpt,
            "UTF-8;j\xC3\xB6rg+1@b\xC3\xBC"
            "cher.example");
  // Not UTF-8, a control character, a malformed escape: refused.
  EXPECT_EQ(ParseRcpt("TO:<u@example.net> ORCPT=utf-8;u@b+FCcher.example", true).error().code, 501);
  EXPECT_EQ(ParseRcpt("TO:<u@example.net> ORCPT=utf-8;u\\x{0A}@example.net", true).error().code,
            501);
  EXPECT_EQ(ParseRcpt("TO:<u@example.net> ORCPT=utf-8;u\\x{FC@example.net", true).error().code,
            501);
  // What Postfix 3.7 sends for a UTF-8 recipient without ORCPT: rfc822 with xtext of UTF-8.
  // Taken in an SMTPUTF8 transaction as the utf-8 type it is; otherwise rfc822 stays ASCII
  // (RFC 3461 §4.2), and bytes that are not UTF-8 are refused either way.
  auto rfc822 = ParseRcpt("TO:<j\xC3\xB6rg@example.net> ORCPT=rfc822;j+C3+B6rg@example.net", true);
  ASSERT_TRUE(rfc822) << rfc822.error().text;
  EXPECT_EQ(rfc822->orcpt, "utf-8;j\xC3\xB6rg@example.net");
  EXPECT_EQ(ParseRcpt("TO:<u@example.net> ORCPT=rfc822;u@b+C3+BCcher.example", false).error().code,
            501);
  EXPECT_EQ(ParseRcpt("TO:<u@example.net> ORCPT=rfc822;u@b+FCcher.example", true).error().code,
            501);
  EXPECT_EQ(ParseRcpt("TO:<u@example.net> ORCPT=rfc822;u+C3+B6+0A@example.net", true).error().code,
            501);
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
  // Issue 9: ORCPT decoding to control characters, a bad addr-type, an empty address.
  EXPECT_EQ(ParseRcpt("TO:<b@example.net> ORCPT=rfc822;b+0D+0A.+0D+0A@x", false).error().code, 501);
  EXPECT_EQ(ParseRcpt("TO:<b@example.net> ORCPT=r@c;b@x", false).error().code, 501);
  EXPECT_EQ(ParseRcpt("TO:<b@example.net> ORCPT=rfc822;", false).error().code, 501);
  EXPECT_EQ(ParseRcpt("TO:<b\xC3@example.net>", true).error().code, 553);
  EXPECT_EQ(ParseRcpt("TO:<@relay.example:@example.net>", false).error().code, 501);
}

TEST(ValidUtf8Test, Cases) {
  EXPECT_TRUE(ValidUtf8("plain"));
  EXPECT_TRUE(ValidUtf8("j\xC3\xB6rg \xE2\x82\xAC \xF0\x9F\x93\xA7"));  // ö € 📧
  EXPECT_FALSE(ValidUtf8("\xC3"));                                      // truncated
  EXPECT_FALSE(ValidUtf8("\xE0\x80\xAF"));                              // overlong
  EXPECT_FALSE(ValidUtf8("\xF4\x90\x80\x80"));                          // > U+10FFFF
  EXPECT_FALSE(ValidUtf8("\xED\xB0\x80"));                              // surrogate
  EXPECT_FALSE(ValidUtf8("\xF8\x88\x80\x80\x80"));                      // 5 bytes
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
