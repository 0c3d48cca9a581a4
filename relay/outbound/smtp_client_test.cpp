#include "relay/outbound/smtp_client.hpp"

#include <gtest/gtest.h>

namespace danerelay::relay {
namespace {

TEST(DotStuffTest, DoublesLeadingDotsAndTerminates) {
  EXPECT_EQ(DotStuff("a\r\n.b\r\n..c\r\n.\r\n"), "a\r\n..b\r\n...c\r\n..\r\n.\r\n");
  EXPECT_EQ(DotStuff(".first\r\n"), "..first\r\n.\r\n");
  EXPECT_EQ(DotStuff("no final newline"), "no final newline\r\n.\r\n");
  EXPECT_EQ(DotStuff(""), ".\r\n");
}

}  // namespace
}  // namespace danerelay::relay
