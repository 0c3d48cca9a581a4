#include "relay/delivery/smtp_client.hpp"

#include <gtest/gtest.h>

namespace danerelay::relay {
namespace {

std::string Stuffed(std::string_view content) {
  std::string out;
  for (auto piece : DotStuff(content)) out += piece;
  return out;
}

TEST(NamesMeTest, FirstWordOfTheFirstLineCaseInsensitively) {
  Reply greeting{220, "", {"Relay.Test ESMTP danerelay"}};
  EXPECT_TRUE(NamesMe(greeting, "relay.test"));
  EXPECT_FALSE(NamesMe(greeting, "relay.test.example"));
  EXPECT_FALSE(NamesMe(greeting, "relay"));
  EXPECT_FALSE(NamesMe(greeting, ""));
  Reply ehlo{250, "", {"mx.example.net Hello relay.test", "PIPELINING", "relay.test"}};
  EXPECT_FALSE(NamesMe(ehlo, "relay.test"));  // only the first word of the first line counts
  EXPECT_TRUE(NamesMe(Reply{250, "", {"relay.test"}}, "relay.test"));
  EXPECT_FALSE(NamesMe(Reply{220, "", {}}, "relay.test"));
}

TEST(DotStuffTest, DoublesLeadingDotsAndTerminates) {
  EXPECT_EQ(Stuffed("a\r\n.b\r\n..c\r\n.\r\n"), "a\r\n..b\r\n...c\r\n..\r\n.\r\n");
  EXPECT_EQ(Stuffed(".first\r\n"), "..first\r\n.\r\n");
  EXPECT_EQ(Stuffed("no final newline"), "no final newline\r\n.\r\n");
  EXPECT_EQ(Stuffed(""), ".\r\n");
  EXPECT_EQ(Stuffed("x.y\r\n\r\n."), "x.y\r\n\r\n..\r\n.\r\n");  // a dot inside a line stays
}

TEST(DotStuffTest, SlicesTheContentWithoutCopying) {
  const std::string content = "Subject: x\r\n\r\nline one\r\nline two\r\n";
  const auto pieces = DotStuff(content);
  ASSERT_EQ(pieces.size(), 2u);  // the whole message, then the terminator
  EXPECT_EQ(pieces[0].data(), content.data());
}

TEST(HeaderHasUtf8Test, LooksAtTheHeaderOnly) {
  EXPECT_TRUE(
      HeaderHasUtf8("Subject: Gr\xc3\xbc\xc3\x9f"
                    "e\r\n\r\nbody\r\n"));
  EXPECT_TRUE(HeaderHasUtf8("From: <j\xc3\xb6rg@example.org>\r\n"));  // no body at all
  EXPECT_FALSE(
      HeaderHasUtf8("Subject: plain\r\n\r\nGr\xc3\xbc\xc3\x9f"
                    "e\r\n"));  // 8BITMIME body
  EXPECT_FALSE(
      HeaderHasUtf8("\r\nGr\xc3\xbc\xc3\x9f"
                    "e\r\n"));  // an empty header
  EXPECT_FALSE(HeaderHasUtf8(""));
}

}  // namespace
}  // namespace danerelay::relay
