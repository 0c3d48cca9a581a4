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

TEST(ReachesListenerTest, SameAddressAndPortOrAnyLocalAddressOfAWildcard) {
  const std::vector<ListenAddress> specific = {{"127.0.0.1", 2525}, {"::1", 25}};
  EXPECT_TRUE(ReachesListener(specific, "127.0.0.1", 2525));
  EXPECT_TRUE(ReachesListener(specific, "::ffff:127.0.0.1", 2525));  // IPv4-mapped
  EXPECT_TRUE(ReachesListener(specific, "0:0::1", 25));
  EXPECT_FALSE(ReachesListener(specific, "127.0.0.1", 25));  // another port: another server
  EXPECT_FALSE(ReachesListener(specific, "127.0.0.2", 2525));
  EXPECT_FALSE(ReachesListener(specific, "not an address", 2525));
  const std::vector<ListenAddress> wildcard = {{"0.0.0.0", 25}};
  EXPECT_TRUE(ReachesListener(wildcard, "127.0.0.53", 25));  // all of 127/8 is local
  EXPECT_TRUE(ReachesListener(wildcard, "0.0.0.0", 25));
  EXPECT_FALSE(ReachesListener(wildcard, "127.0.0.53", 26));
  EXPECT_FALSE(ReachesListener(wildcard, "192.0.2.1", 25));  // TEST-NET-1: on no interface here
  EXPECT_TRUE(ReachesListener({{"::", 25}}, "::1", 25));
  EXPECT_FALSE(ReachesListener({{"::", 25}}, "2001:db8::1", 25));
  EXPECT_FALSE(ReachesListener({}, "127.0.0.1", 25));
}

TEST(JudgeDnsblTest, ListedOnlyInLoopbackOutsideTheErrorCodes) {
  EXPECT_EQ(JudgeDnsbl({}), DnsblAnswer::kNotListed);
  EXPECT_EQ(JudgeDnsbl({"127.0.0.2"}), DnsblAnswer::kListed);
  EXPECT_EQ(JudgeDnsbl({"127.0.1.4"}), DnsblAnswer::kListed);
  EXPECT_EQ(JudgeDnsbl({"127.255.255.254"}), DnsblAnswer::kError);  // public resolver refused
  EXPECT_EQ(JudgeDnsbl({"127.255.255.255"}), DnsblAnswer::kError);  // over quota
  EXPECT_EQ(JudgeDnsbl({"192.0.2.1"}), DnsblAnswer::kError);        // a wildcard, not a list
  EXPECT_EQ(JudgeDnsbl({"127.255.255.252", "127.0.0.2"}), DnsblAnswer::kListed);
}

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

// One address inside (and the first one past) every special-purpose block; globally routed
// addresses next to them are not special.
TEST(SpecialPurposeTest, EveryRegistryBlock) {
  const std::pair<const char*, const char*> special[] = {
      {"0.1.2.3", "this network"},
      {"10.255.255.255", "private-use"},
      {"100.64.0.1", "shared address space (CGNAT)"},
      {"100.127.255.255", "shared address space (CGNAT)"},
      {"127.0.0.1", "loopback"},
      {"169.254.10.10", "link-local"},
      {"172.16.0.1", "private-use"},
      {"172.31.255.255", "private-use"},
      {"192.0.0.8", "IETF protocol assignments"},
      {"192.0.2.1", "documentation"},
      {"192.88.99.1", "deprecated 6to4 relay anycast"},
      {"192.168.1.1", "private-use"},
      {"198.19.255.255", "benchmarking"},
      {"198.51.100.7", "documentation"},
      {"203.0.113.9", "documentation"},
      {"224.0.0.1", "multicast"},
      {"239.255.255.255", "multicast"},
      {"240.0.0.1", "reserved"},
      {"255.255.255.255", "limited broadcast"},
      {"::", "unspecified"},
      {"::1", "loopback"},
      {"::ffff:10.0.0.1", "private-use"},  // IPv4-mapped: judged as IPv4
      {"64:ff9b:1::1", "local-use IPv4/IPv6 translation"},
      {"100::1", "discard-only"},
      {"2001:2::1", "IETF protocol assignments"},
      {"2001:db8::25", "documentation"},
      {"2002:c000:204::1", "6to4"},
      {"3fff:1::1", "documentation"},
      {"5f00::1", "segment routing (SRv6) SIDs"},
      {"fd12:3456::1", "unique-local"},
      {"fc00::1", "unique-local"},
      {"fe80::1", "link-local"},
      {"ff02::1", "multicast"},
      {"mx.example", "not an IP address"},
  };
  for (const auto& [address, name] : special) {
    const auto got = SpecialPurpose(address);
    ASSERT_TRUE(got) << address;
    EXPECT_EQ(*got, name) << address;
  }
  for (const char* global :
       {"1.1.1.1", "8.8.8.8", "100.63.255.255", "100.128.0.0", "172.15.255.255", "172.32.0.0",
        "192.0.1.255", "192.169.0.0", "198.17.255.255", "198.20.0.0", "223.255.255.255",
        "2a00:1450::1", "2606:4700::1111", "2001:4860:4860::8888", "::ffff:8.8.8.8"}) {
    EXPECT_FALSE(SpecialPurpose(global)) << global << " is globally routed";
  }
}

}  // namespace
}  // namespace danerelay::relay
