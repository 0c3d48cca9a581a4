#include "relay/network.hpp"

#include <gtest/gtest.h>

namespace danerelay::relay {
namespace {

TEST(IpNetworkTest, ContainsV4AndV6) {
  auto loop = IpNetwork::Parse("127.0.0.0/8");
  ASSERT_TRUE(loop);
  EXPECT_TRUE(loop->Contains("127.0.0.1"));
  EXPECT_TRUE(loop->Contains("127.255.1.2"));
  EXPECT_TRUE(loop->Contains("::ffff:127.0.0.9"));  // v4-mapped
  EXPECT_FALSE(loop->Contains("128.0.0.1"));
  EXPECT_FALSE(loop->Contains("::1"));
  auto v6 = IpNetwork::Parse("2001:db8::/32");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->Contains("2001:db8:1::5"));
  EXPECT_FALSE(v6->Contains("2001:db9::1"));
  auto host = IpNetwork::Parse("::1");
  ASSERT_TRUE(host);
  EXPECT_TRUE(host->Contains("::1"));
  EXPECT_FALSE(host->Contains("::2"));
  EXPECT_EQ(host->ToString(), "::1/128");
  auto all = IpNetwork::Parse("0.0.0.0/0");
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->Contains("203.0.113.7"));
}

TEST(IpNetworkTest, RejectsNonsense) {
  std::string why;
  EXPECT_FALSE(IpNetwork::Parse("10.1.2.3/8", &why));
  EXPECT_NE(why.find("host bits"), std::string::npos);
  EXPECT_FALSE(IpNetwork::Parse("10.0.0.0/33", &why));
  EXPECT_FALSE(IpNetwork::Parse("10.0.0.0/", &why));
  EXPECT_FALSE(IpNetwork::Parse("example.org", &why));
  EXPECT_FALSE(IpNetwork::Parse("::/129", &why));
}

}  // namespace
}  // namespace danerelay::relay

namespace danerelay::relay {
namespace {

TEST(RouteTest, Forms) {
  auto bracketed = ParseRoute("[mx.example.net]:2525");
  ASSERT_TRUE(bracketed);
  EXPECT_EQ(bracketed->host, "mx.example.net");
  EXPECT_EQ(bracketed->port, 2525);
  EXPECT_FALSE(bracketed->ip_literal);
  auto bare = ParseRoute("mx.example.net");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->port, 0);  // the default delivery port
  auto v6 = ParseRoute("[2001:db8::25]:25");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->ip_literal);
  EXPECT_EQ(v6->host, "2001:db8::25");
  for (const char* bad : {"", "[]", "[mx.example.net]:0", "[mx.example.net]:99999",
                          "[mx.example.net]x", "mx example", "[mx.example.net"}) {
    EXPECT_FALSE(ParseRoute(bad)) << bad;
  }
}

}  // namespace
}  // namespace danerelay::relay
