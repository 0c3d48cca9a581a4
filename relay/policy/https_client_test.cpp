#include "relay/policy/https_client.hpp"

#include <gtest/gtest.h>

namespace danerelay::relay {
namespace {

using Addresses = std::vector<std::string>;

TEST(UsableAddressesTest, GlobalAddressesAreKept) {
  const auto got =
      UsableAddresses("mta-sts.example.com", {"192.0.43.10", "2001:500:88::10"}, false);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, (Addresses{"192.0.43.10", "2001:500:88::10"}));
}

TEST(UsableAddressesTest, SpecialPurposeAddressesAreDropped) {
  // A host with one global address among special ones: only that one is used.
  const auto got =
      UsableAddresses("h.example", {"127.0.0.1", "10.1.2.3", "192.0.43.10", "fe80::1"}, false);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, (Addresses{"192.0.43.10"}));
}

TEST(UsableAddressesTest, OnlySpecialPurposeAddressesAreRefusedWithTheirNames) {
  const auto got = UsableAddresses("collector.example", {"127.0.0.5", "192.168.1.1", "::1"}, false);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error(),
            "refused: collector.example has only special-purpose addresses (127.0.0.5: loopback, "
            "192.168.1.1: private-use, ::1: loopback); [mta_sts] allow_special_addresses is "
            "false");
  // The cloud metadata address (link-local) and CGNAT space too.
  EXPECT_FALSE(UsableAddresses("h", {"169.254.169.254"}, false));
  EXPECT_FALSE(UsableAddresses("h", {"100.64.0.1"}, false));
}

TEST(UsableAddressesTest, TheTestSettingAllowsThem) {
  const auto got = UsableAddresses("h", {"127.0.0.5", "::1"}, true);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, (Addresses{"127.0.0.5", "::1"}));
}

TEST(HttpsRequestOnceTest, ARefusedHostIsNeverContacted) {
  HttpsRequest req;
  req.host = "mta-sts.example.com";
  req.port = 1;  // nothing listens there: a connection attempt would fail differently
  req.path = "/.well-known/mta-sts.txt";
  req.addresses = {"127.0.0.1"};
  req.timeout = std::chrono::seconds(5);
  const auto got = HttpsRequestOnce(req);
  ASSERT_FALSE(got);
  EXPECT_TRUE(got.error().refused);
  EXPECT_FALSE(got.error().certificate);
  EXPECT_EQ(got.error().message,
            "https://mta-sts.example.com:1/.well-known/mta-sts.txt: refused: mta-sts.example.com "
            "has only special-purpose addresses (127.0.0.1: loopback); [mta_sts] "
            "allow_special_addresses is false");
}

}  // namespace
}  // namespace danerelay::relay
