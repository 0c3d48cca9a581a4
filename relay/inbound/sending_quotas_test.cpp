#include "relay/inbound/sending_quotas.hpp"

#include <gtest/gtest.h>

namespace danerelay::relay {
namespace {

using namespace std::chrono_literals;
using Kind = QuotaRule::Kind;

queue::TimePoint At(int s) { return queue::TimePoint(std::chrono::seconds(1'790'000'000 + s)); }

QuotaRule Rule(Kind kind, std::string match, std::uint64_t messages, std::chrono::seconds window) {
  QuotaRule r;
  r.kind = kind;
  r.match = std::move(match);
  r.messages.push_back({messages, window, std::to_string(messages) + "/10s"});
  return r;
}

SendingQuotas::Sender User(std::string user) {
  SendingQuotas::Sender s;
  s.user = std::move(user);
  s.address = "192.0.2.7";
  s.sender = s.user + "@example.org";
  return s;
}

TEST(SendingQuotasTest, SixthMessageIsRefusedOtherUsersAndNextWindowAreNot) {
  QuotaOptions o;
  o.rules.push_back(Rule(Kind::kUser, "*", 5, 10s));
  SendingQuotas q(o);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(q.Count(User("a"), false, At(0))) << i;
  auto refused = q.Count(User("a"), false, At(1));
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->kind, "user");
  EXPECT_EQ(refused->key, "user a");
  EXPECT_EQ(refused->limit, "5 messages per 10s");
  EXPECT_TRUE(refused->first);
  EXPECT_FALSE(q.Count(User("a"), false, At(2))->first);  // warned once per window
  EXPECT_FALSE(q.Count(User("b"), false, At(2)));
  EXPECT_FALSE(q.Count(User("a"), true, At(2)));    // no recipient limit
  EXPECT_FALSE(q.Count(User("a"), false, At(10)));  // the next window
}

TEST(SendingQuotasTest, RefusedCommandCountsNowhere) {
  QuotaOptions o;
  o.rules.push_back(Rule(Kind::kUser, "a", 1, 10s));
  o.rules.push_back(Rule(Kind::kSenderDomain, "example.org", 2, 10s));
  SendingQuotas q(o);
  EXPECT_FALSE(q.Count(User("a"), false, At(0)));
  EXPECT_TRUE(q.Count(User("a"), false, At(0)));   // user a is over; the domain not counted
  EXPECT_FALSE(q.Count(User("c"), false, At(0)));  // the domain's second
  auto refused = q.Count(User("d"), false, At(0));
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->key, "sender_domain example.org");
}

TEST(SendingQuotasTest, ClientRulesCountTrustedAddressesOneByOneMostSpecificNetwork) {
  QuotaOptions o;
  o.rules.push_back(Rule(Kind::kClient, "", 1, 10s));
  o.rules.back().network = IpNetwork::Parse("192.0.2.0/24");
  o.rules.push_back(Rule(Kind::kClient, "", 100, 10s));
  o.rules.back().network = IpNetwork::Parse("192.0.0.0/16");
  SendingQuotas q(o);
  SendingQuotas::Sender s;
  s.address = "192.0.2.7";
  s.trusted = true;
  EXPECT_FALSE(q.Count(s, false, At(0)));
  EXPECT_TRUE(q.Count(s, false, At(0)));
  s.address = "192.0.2.8";
  EXPECT_FALSE(q.Count(s, false, At(0)));
  s.trusted = false;  // only trusted clients are counted by address
  EXPECT_FALSE(q.Count(s, false, At(0)));
}

TEST(SendingQuotasTest, CountsSurviveThroughTheStoreRowsOnlyForTheCurrentWindow) {
  QuotaOptions o;
  o.rules.push_back(Rule(Kind::kUser, "*", 3, 86400s));
  SendingQuotas first(o);
  for (int i = 0; i < 2; ++i) EXPECT_FALSE(first.Count(User("a"), false, At(0)));
  const auto rows = first.TakeChanged();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].count, 2);
  EXPECT_TRUE(first.TakeChanged().empty());
  SendingQuotas second(o);
  second.Load(rows, At(5));
  EXPECT_FALSE(second.Count(User("a"), false, At(6)));
  EXPECT_TRUE(second.Count(User("a"), false, At(7)));
  SendingQuotas next_day(o);
  next_day.Load(rows, At(86400));
  EXPECT_FALSE(next_day.Count(User("a"), false, At(86400)));
}

}  // namespace
}  // namespace danerelay::relay
