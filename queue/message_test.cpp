#include "queue/message.hpp"

#include <gtest/gtest.h>

namespace danerelay::queue {
namespace {

TEST(HeaderValueTest, FirstFieldUnfoldedAndOnlyInTheHeader) {
  const std::string m =
      "Received: from x\r\n\tby y\r\nmessage-id:\r\n  <a@b.example>  \r\nSubject: s\r\n"
      "Message-ID: <second@b.example>\r\n\r\nMessage-ID: <body@b.example>\r\n";
  EXPECT_EQ(HeaderValue(m, "Message-ID"), "<a@b.example>");
  EXPECT_EQ(HeaderValue(m, "Received"), "from x\tby y");
  EXPECT_EQ(HeaderValue(m, "Subject"), "s");
  EXPECT_EQ(HeaderValue(m, "From"), "");
  EXPECT_EQ(HeaderValue("Subject: x\r\n\r\nFrom: body\r\n", "From"), "");
  EXPECT_EQ(HeaderValue("Subject", "Subject"), "");  // no colon, no CRLF
}

TEST(CountHeaderFieldsTest, CountsFieldsOfTheHeaderOnlyNotContinuationsOrBody) {
  const std::string m =
      "Received: from a\r\n\tby b\r\nRECEIVED: from c\r\nX-Received: no\r\nReceived:x\r\n"
      "\r\nReceived: in the body\r\n";
  EXPECT_EQ(CountHeaderFields(m, "Received"), 3u);
  EXPECT_EQ(CountHeaderFields(m, "Subject"), 0u);
  EXPECT_EQ(CountHeaderFields("", "Received"), 0u);
}

TEST(PrintableTest, ControlsAndEightBitBecomeQuestionMarksAndLongTextIsCut) {
  EXPECT_EQ(Printable("a\r\nb\x01\xff", 100), "a??b??");
  EXPECT_EQ(Printable(std::string(20, 'x'), 10), "xxxxxxx...");
  EXPECT_EQ(Printable("short", 10), "short");
}

}  // namespace
}  // namespace danerelay::queue
