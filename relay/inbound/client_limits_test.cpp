#include "relay/inbound/client_limits.hpp"

#include <gtest/gtest.h>

namespace danerelay::relay {
namespace {

TEST(ClientGroupTest, IpV6ByPrefixIpV4ByAddress) {
  EXPECT_EQ(ClientGroup("2001:db8:1:2:aaaa::1", 32, 64), "2001:db8:1:2::/64");
  EXPECT_EQ(ClientGroup("2001:db8:1:2:ffff:ffff:ffff:ffff", 32, 64), "2001:db8:1:2::/64");
  EXPECT_NE(ClientGroup("2001:db8:1:3::1", 32, 64), ClientGroup("2001:db8:1:2::1", 32, 64));
  EXPECT_EQ(ClientGroup("2001:db8:1:2:aaaa::1", 32, 48), "2001:db8:1::/48");
  EXPECT_EQ(ClientGroup("2001:db8::1", 32, 128), "2001:db8::1");
  EXPECT_EQ(ClientGroup("192.0.2.7", 32, 64), "192.0.2.7");
  EXPECT_EQ(ClientGroup("192.0.2.7", 24, 64), "192.0.2.0/24");
  EXPECT_EQ(ClientGroup("192.0.2.7", 20, 64), "192.0.0.0/20");
  // IPv4-mapped: IPv4 rules.
  EXPECT_EQ(ClientGroup("::ffff:192.0.2.7", 32, 64), "192.0.2.7");
  EXPECT_EQ(ClientGroup("not an address", 32, 64), "not an address");
}

TEST(ConnectionRateTest, CountsPerGroupWithinTheWindow) {
  ConnectionRate rate(std::chrono::seconds(60));
  const auto t0 = ConnectionRate::Clock::time_point() + std::chrono::hours(1);
  EXPECT_EQ(rate.Admit("a", t0), 1u);
  EXPECT_EQ(rate.Admit("a", t0 + std::chrono::seconds(10)), 2u);
  EXPECT_EQ(rate.Admit("b", t0 + std::chrono::seconds(10)), 1u);
  EXPECT_EQ(rate.Admit("a", t0 + std::chrono::seconds(59)), 3u);
  EXPECT_EQ(rate.Admit("a", t0 + std::chrono::seconds(60)), 1u);  // a new window
}

}  // namespace
}  // namespace danerelay::relay
