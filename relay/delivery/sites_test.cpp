#include "relay/delivery/sites.hpp"

#include <gtest/gtest.h>

namespace danerelay::relay {
namespace {

TEST(SitesTest, TheSortedMxSetNamesTheSite) {
  EXPECT_EQ(SiteOfMx({"MX2.example.net.", "mx1.example.net"}, {}),
            "mx1.example.net,mx2.example.net");
  EXPECT_EQ(SiteOfMx({"mx1.example.net", "mx2.example.net."}, {}),
            SiteOfMx({"mx2.example.net", "mx1.example.net", "mx1.example.net"}, {}));
  EXPECT_EQ(SiteOfMx({}, {}), "");
}

TEST(SitesTest, ProvidersGroupDomainsWithDifferentMxHosts) {
  EXPECT_EQ(SiteOfMx({"aspmx.l.google.com", "alt1.aspmx.l.google.com"}, {}), "google");
  EXPECT_EQ(SiteOfMx({"contoso-com.mail.protection.outlook.com"}, {}), "microsoft");
  EXPECT_EQ(SiteOfMx({"fabrikam-com.mail.protection.outlook.com."}, {}), "microsoft");
  // Only when every MX host is the provider's: a backup MX elsewhere makes its own site.
  EXPECT_EQ(SiteOfMx({"aspmx.l.google.com", "backup.example.net"}, {}),
            "aspmx.l.google.com,backup.example.net");
  // The operator's providers come first.
  const std::vector<SiteProvider> own = {{"hoster", {".mx.hoster.example"}}};
  EXPECT_EQ(SiteOfMx({"a.mx.hoster.example", "b.mx.hoster.example"}, own), "hoster");
}

TEST(SitesTest, ARoutedDomainsSiteIsItsNextHops) {
  Route r;
  r.hosts = {{"192.0.2.1", 2525, true, false}, {"relay.example.net", 0, false, true}};
  EXPECT_EQ(SiteOfRoute(r), "route [192.0.2.1]:2525,relay.example.net");
}

}  // namespace
// Dead destinations of a provider's site are counted per domain (delivery_agent.cpp).
TEST(SitesTest, ProviderSitesAreKnownByName) {
  const std::vector<SiteProvider> own = {{"hoster", {".mx.hoster.example"}}};
  EXPECT_TRUE(IsProviderSite("google", own));
  EXPECT_TRUE(IsProviderSite("hoster", own));
  EXPECT_FALSE(IsProviderSite("hoster", {}));
  EXPECT_FALSE(IsProviderSite("mx1.example.net,mx2.example.net", own));
}

}  // namespace danerelay::relay
