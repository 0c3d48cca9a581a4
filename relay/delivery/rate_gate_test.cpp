#include "relay/delivery/rate_gate.hpp"

#include <gtest/gtest.h>

#include <set>

namespace danerelay::relay {
namespace {

using std::chrono::seconds;
const queue::TimePoint t0{seconds(1'800'000'000)};

QuotaLimit Rate(std::uint64_t count, seconds window, std::string text) {
  return {count, window, std::move(text)};
}

TEST(RateGateTest, UnlimitedWithoutARate) {
  RateGate g;
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(g.Take("example.org", t0));
  EXPECT_EQ(g.RateOf("example.org"), "");
}

// "60/min": one message a second, no burst; the others are booked the following turns, in
// order, one each.
TEST(RateGateTest, PacesEvenlyAndBooksTurnsInOrder) {
  RateGate g;
  g.Configure(Rate(60, seconds(60), "60/min"), {});
  EXPECT_FALSE(g.Take("example.org", t0));
  EXPECT_EQ(g.Take("example.org", t0), t0 + seconds(1));
  EXPECT_EQ(g.Take("example.org", t0), t0 + seconds(2));
  EXPECT_EQ(g.Take("example.org", t0 + seconds(0)), t0 + seconds(3));
  // Each booked message, back at its turn, goes.
  EXPECT_FALSE(g.Take("example.org", t0 + seconds(1), t0 + seconds(1)));
  EXPECT_FALSE(g.Take("example.org", t0 + seconds(2), t0 + seconds(2)));
  // Fresh mail between turns waits behind the booked ones.
  EXPECT_EQ(g.Take("example.org", t0 + std::chrono::milliseconds(2400)), t0 + seconds(4));
  // A booked one woken late does not push the next one out of its turn.
  EXPECT_FALSE(g.Take("example.org", t0 + std::chrono::milliseconds(3300), t0 + seconds(3)));
  EXPECT_FALSE(g.Take("example.org", t0 + seconds(4), t0 + seconds(4)));
  // A turn comes only once; one never given is fresh mail.
  EXPECT_EQ(g.Take("example.org", t0 + seconds(4), t0 + seconds(4)), t0 + seconds(5));
  // Another destination has its own turns.
  EXPECT_FALSE(g.Take("example.net", t0));
}

// Offers `fresh` new messages every 100 ms for `ms_total`, parked ones coming back at their
// turns (as the scheduler wakes them); returns {fresh sent, parked sent, still waiting}.
struct Offered {
  int fresh = 0, parked = 0, waiting = 0;
};
Offered Offer(RateGate& g, int fresh_every_ms, int ms_total, int parked_at_start) {
  Offered run;
  std::multiset<queue::TimePoint> booked;
  if (parked_at_start > 0 && !g.Take("example.org", t0)) ++run.fresh;  // the first goes
  for (int i = 0; i < parked_at_start; ++i) booked.insert(*g.Take("example.org", t0));
  for (int ms = 0; ms <= ms_total; ms += 100) {
    const auto now = t0 + std::chrono::milliseconds(ms);
    while (!booked.empty() && *booked.begin() <= now) {
      const auto turn = *booked.begin();
      booked.erase(booked.begin());
      if (auto again = g.Take("example.org", now, turn)) {
        booked.insert(*again);
      } else {
        ++run.parked;
      }
    }
    if (ms % fresh_every_ms == 0) {
      if (auto turn = g.Take("example.org", now)) {
        booked.insert(*turn);
      } else {
        ++run.fresh;
      }
    }
  }
  run.waiting = static_cast<int>(booked.size());
  return run;
}

TEST(RateGateTest, AtMostOnePlusTheRateInAWindow) {
  RateGate g;
  g.Configure(Rate(60, seconds(60), "60/min"), {});
  const Offered r = Offer(g, 100, 60'000, 0);  // 10 a second for a minute, at 1 a second
  EXPECT_LE(r.fresh + r.parked, 61);
  EXPECT_GE(r.fresh + r.parked, 60);
}

// Fresh mail at the rate does not starve the parked backlog: it queues behind it.
TEST(RateGateTest, FreshMailNeverTakesAParkedTurn) {
  RateGate g;
  g.Configure(Rate(60, seconds(60), "60/min"), {});
  const Offered r = Offer(g, 1000, 600'000, 10);
  // Before, every fresh message took the turn a parked one woke for: 600 fresh went, the
  // parked were booked again and again and none went. Now the backlog drains at the rate and
  // fresh mail queues behind it: the backlog does not grow.
  EXPECT_GE(r.parked, 10);
  EXPECT_LE(r.waiting, 11);
  EXPECT_LE(r.fresh + r.parked, 601);
  EXPECT_GE(r.fresh + r.parked, 590);
}

// A reload that changes a destination's rate starts its turns afresh.
TEST(RateGateTest, ANewRateStartsAfresh) {
  RateGate g;
  g.Configure(Rate(1, seconds(3600), "1/h"), {});
  EXPECT_FALSE(g.Take("example.org", t0));
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(g.Take("example.org", t0));
  g.Configure(Rate(6000, seconds(60), "6000/min"), {});
  EXPECT_FALSE(g.Take("example.org", t0 + seconds(1)));
  // The same rate again keeps what was booked.
  g.Configure(Rate(6000, seconds(60), "6000/min"), {});
  EXPECT_EQ(g.Take("example.org", t0 + seconds(1)),
            t0 + seconds(1) + std::chrono::milliseconds(10));
}

TEST(RateGateTest, ADestinationsOwnRateWins) {
  RateGate g;
  g.Configure(Rate(60, seconds(60), "60/min"), {{"slow.example", Rate(1, seconds(3600), "1/h")}});
  EXPECT_EQ(g.RateOf("slow.example"), "1/h");
  EXPECT_EQ(g.RateOf("other.example"), "60/min");
  EXPECT_FALSE(g.Take("slow.example", t0));
  EXPECT_EQ(g.Take("slow.example", t0 + seconds(10)), t0 + seconds(3600));
}

// What queue stats shows: the booked turns, until the parked mail comes back for them.
TEST(RateGateTest, BudgetsShowTheBookedTurnsUntilTaken) {
  RateGate g;
  g.Configure(Rate(600, seconds(60), "600/min"), {});
  EXPECT_TRUE(g.Budgets(t0).empty());
  std::vector<queue::TimePoint> turns;
  EXPECT_FALSE(g.Take("b.example", t0));
  for (int i = 0; i < 29; ++i) turns.push_back(*g.Take("b.example", t0));
  auto b = g.Budgets(t0);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b["b.example"].rate, "600/min");
  EXPECT_EQ(b["b.example"].booked, 29u);
  EXPECT_EQ(b["b.example"].next, t0 + seconds(3));
  for (const auto& turn : turns) EXPECT_FALSE(g.Take("b.example", turn, turn));
  EXPECT_TRUE(g.Budgets(turns.back() + seconds(1)).empty());
}

}  // namespace
}  // namespace danerelay::relay
