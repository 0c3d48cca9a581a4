#include "relay/policy/mta_sts.hpp"

#include <gtest/gtest.h>

namespace danerelay::relay::sts {
namespace {

TEST(StsTxtTest, OneValidRecordGivesItsId) {
  EXPECT_EQ(ParseTxt({"v=STSv1; id=20160831085700Z;"}), "20160831085700Z");
  EXPECT_EQ(ParseTxt({"v=STSv1;id=abc", "v=spf1 -all"}), "abc");  // others are discarded
  EXPECT_EQ(ParseTxt({"v=STSv1; id=abc; ext=1"}), "abc");         // extensions are allowed
}

TEST(StsTxtTest, AnythingElseMeansNoPolicy) {
  EXPECT_EQ(ParseTxt({}), std::nullopt);
  EXPECT_EQ(ParseTxt({"v=STSv1; id=a;", "v=STSv1; id=b;"}), std::nullopt);  // two records
  EXPECT_EQ(ParseTxt({"v=STSv1;"}), std::nullopt);                          // no id
  EXPECT_EQ(ParseTxt({"v=STSv1; id=not-alnum;"}), std::nullopt);
  EXPECT_EQ(ParseTxt({"v=STSv1; id=" + std::string(33, 'a')}), std::nullopt);
  EXPECT_EQ(ParseTxt({"v=STSv1; id=a; id=b"}), std::nullopt);
  EXPECT_EQ(ParseTxt({"v=STSv2; id=a"}), std::nullopt);
}

TEST(StsPolicyTest, ParsesTheRfcExample) {
  auto p = ParsePolicy(
      "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
      "mx: backupmx.example.com\r\nmax_age: 604800\r\n");
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->mode, Mode::kEnforce);
  EXPECT_EQ(p->mx, (std::vector<std::string>{"mail.example.com", "*.example.net",
                                             "backupmx.example.com"}));
  EXPECT_EQ(p->max_age, std::chrono::seconds(604800));
  // LF line ends, blanks around values, unknown keys.
  auto q = ParsePolicy("version:STSv1\nmode:  testing \nmx: MX.Example.COM.\nfoo: bar\nmax_age: 0");
  ASSERT_TRUE(q) << q.error();
  EXPECT_EQ(q->mode, Mode::kTesting);
  EXPECT_EQ(q->mx, std::vector<std::string>{"mx.example.com"});
  auto none = ParsePolicy("version: STSv1\nmode: none\nmax_age: 86400\n");
  ASSERT_TRUE(none) << none.error();
  EXPECT_EQ(none->mode, Mode::kNone);
}

TEST(StsPolicyTest, RefusesBrokenPolicies) {
  EXPECT_FALSE(ParsePolicy("mode: enforce\nmx: a.example\nmax_age: 1\n"));  // no version
  EXPECT_FALSE(ParsePolicy("version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n"));
  EXPECT_FALSE(ParsePolicy("version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n"));
  EXPECT_FALSE(ParsePolicy("version: STSv1\nmode: enforce\nmax_age: 1\n"));  // no mx
  EXPECT_FALSE(ParsePolicy("version: STSv1\nmode: enforce\nmx: a\n"));       // no max_age
  EXPECT_FALSE(ParsePolicy("version: STSv1\nmode: enforce\nmx: a\nmax_age: 31557601\n"));
  EXPECT_FALSE(ParsePolicy("version: STSv1\nmode: enforce\nmx: a\nmax_age: -5\n"));
  EXPECT_FALSE(ParsePolicy("<html>not a policy</html>\n"));
}

TEST(StsMxTest, ExactNamesAndOneLabelWildcards) {
  EXPECT_TRUE(MxMatches("mail.example.com", "MAIL.example.com."));
  EXPECT_FALSE(MxMatches("mail.example.com", "mail2.example.com"));
  EXPECT_TRUE(MxMatches("*.example.net", "mx1.example.net"));
  EXPECT_FALSE(MxMatches("*.example.net", "a.b.example.net"));  // one label only
  EXPECT_FALSE(MxMatches("*.example.net", "example.net"));
  Policy p;
  p.mx = {"mail.example.com", "*.example.net"};
  EXPECT_TRUE(MxAllowed(p, "x.example.net"));
  EXPECT_FALSE(MxAllowed(p, "evil.example.org"));
}

// RFC 8461 §3.3: the policy is served as text/plain; media types compare case-insensitively
// and may carry parameters.
TEST(StsPolicyTest, MediaTypeIsTextPlainInAnyCase) {
  EXPECT_TRUE(IsPolicyMediaType("text/plain"));
  EXPECT_TRUE(IsPolicyMediaType("Text/Plain"));
  EXPECT_TRUE(IsPolicyMediaType("TEXT/PLAIN; charset=UTF-8"));
  EXPECT_TRUE(IsPolicyMediaType("text/plain;charset=us-ascii"));
  EXPECT_TRUE(IsPolicyMediaType("text/plain ; charset=utf-8"));
  EXPECT_FALSE(IsPolicyMediaType("text/html"));
  EXPECT_FALSE(IsPolicyMediaType("text/plainx"));
  EXPECT_FALSE(IsPolicyMediaType("text/plain-foo; charset=utf-8"));
  EXPECT_FALSE(IsPolicyMediaType("application/octet-stream"));
  EXPECT_FALSE(IsPolicyMediaType(""));
}

// RFC 8461 §5.1: a new id is fetched at once; an unchanged one ahead of expiry (a day after the
// fetch, or at half of a shorter max_age), so that a policy that stays the same never lapses.
TEST(StsPolicyTest, UnchangedPolicyIsFetchedAgainBeforeItExpires) {
  using std::chrono::hours;
  const auto fetched = std::chrono::system_clock::time_point(std::chrono::seconds(1796169600));
  Policy week;
  week.id = "1";
  week.max_age = std::chrono::seconds(604800);
  EXPECT_TRUE(FetchDue(week, fetched, "2", fetched));  // a new id
  EXPECT_FALSE(FetchDue(week, fetched, "1", fetched));
  EXPECT_FALSE(FetchDue(week, fetched, "1", fetched + hours(23)));
  EXPECT_TRUE(FetchDue(week, fetched, "1", fetched + hours(24)));  // long before the week ends
  Policy day = week;
  day.max_age = std::chrono::seconds(86400);
  EXPECT_FALSE(FetchDue(day, fetched, "1", fetched + hours(11)));
  EXPECT_TRUE(FetchDue(day, fetched, "1", fetched + hours(12)));  // half of max_age: in time
}

}  // namespace
}  // namespace danerelay::relay::sts
