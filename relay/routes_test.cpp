#include "relay/routes.hpp"

#include <gtest/gtest.h>

namespace danerelay::relay {
namespace {

Routes Table() {
  Routes r;
  for (const char* key : {"*", "example.com", ".example.com", ".b.example.com"}) {
    r.by_domain[key].key = key;
  }
  r.by_sender["boss@corp.example"].key = "boss@corp.example";
  r.by_sender["@dept.example"].key = "@dept.example";
  r.tls_policy["partner.example"].policy = TlsPolicy::kVerify;
  r.tls_policy[".partner.example"].policy = TlsPolicy::kEncrypt;
  return r;
}

std::string KeyFor(const Routes& r, std::string_view sender, std::string_view domain) {
  const Route* route = FindRoute(r, sender, domain);
  return route ? route->key : "(MX)";
}

TEST(Routes, TheMostSpecificRecipientKeyWins) {
  const Routes r = Table();
  EXPECT_EQ(KeyFor(r, "", "example.com"), "example.com");
  EXPECT_EQ(KeyFor(r, "", "EXAMPLE.com"), "example.com");
  EXPECT_EQ(KeyFor(r, "", "a.example.com"), ".example.com");
  EXPECT_EQ(KeyFor(r, "", "x.b.example.com"), ".b.example.com");
  EXPECT_EQ(KeyFor(r, "", "b.example.com"), ".example.com");  // ".b" is for its subdomains
  EXPECT_EQ(KeyFor(r, "", "other.net"), "*");
  EXPECT_EQ(KeyFor(r, "", "notexample.com"), "*");
}

TEST(Routes, WithoutADefaultRouteMailGoesByMx) {
  Routes r = Table();
  r.by_domain.erase("*");
  EXPECT_EQ(KeyFor(r, "", "other.net"), "(MX)");
}

TEST(Routes, SenderRoutesComeFirstByAddressThenDomain) {
  const Routes r = Table();
  EXPECT_EQ(KeyFor(r, "Boss@Corp.example", "example.com"), "boss@corp.example");
  EXPECT_EQ(KeyFor(r, "clerk@corp.example", "example.com"), "example.com");
  EXPECT_EQ(KeyFor(r, "anyone@dept.example", "other.net"), "@dept.example");
  EXPECT_EQ(KeyFor(r, "", "other.net"), "*");  // the null sender (a bounce) has no sender route
}

TEST(Routes, TlsPolicyEntriesMatchExactThenSubdomainsButHaveNoDefault) {
  const Routes r = Table();
  ASSERT_TRUE(FindTlsPolicy(r, "partner.example"));
  EXPECT_EQ(FindTlsPolicy(r, "partner.example")->policy, TlsPolicy::kVerify);
  EXPECT_EQ(FindTlsPolicy(r, "mx.partner.example")->policy, TlsPolicy::kEncrypt);
  EXPECT_EQ(FindTlsPolicy(r, "other.example"), nullptr);
}

TEST(Routes, PolicyNamesRoundTrip) {
  for (const char* name :
       {"dane", "dane-only", "verify", "fingerprint", "encrypt", "may", "none"}) {
    auto p = ParseTlsPolicy(name);
    ASSERT_TRUE(p) << name;
    EXPECT_EQ(ToString(*p), name);
  }
  EXPECT_FALSE(ParseTlsPolicy("secure"));
  EXPECT_TRUE(Authenticates(TlsPolicy::kVerify));
  EXPECT_FALSE(Authenticates(TlsPolicy::kEncrypt));
}

TEST(Routes, AddressesAreOrderedAndFilteredBySourceOptions) {
  const std::vector<std::string> both{"192.0.2.1", "192.0.2.2", "2001:db8::1"};
  SourceOptions s;
  EXPECT_EQ(OrderAddresses(both, s), both);
  s.preference = AddressPreference::kIpv6;
  EXPECT_EQ(OrderAddresses(both, s),
            (std::vector<std::string>{"2001:db8::1", "192.0.2.1", "192.0.2.2"}));
  s.ipv6 = false;
  EXPECT_EQ(OrderAddresses(both, s), (std::vector<std::string>{"192.0.2.1", "192.0.2.2"}));
  s.ipv6 = true;
  s.ipv4 = false;
  EXPECT_EQ(OrderAddresses(both, s), (std::vector<std::string>{"2001:db8::1"}));
}

}  // namespace
}  // namespace danerelay::relay
