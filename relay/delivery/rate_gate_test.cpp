#include "relay/delivery/rate_gate.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace danerelay::relay {
namespace {

using std::chrono::seconds;
const queue::TimePoint t0{seconds(1'800'000'000)};

QuotaLimit Rate(std::uint64_t count, seconds window, std::string text) {
  return {count, window, std::move(text)};
}

TEST(RateGateTest, UnlimitedWithoutARate) {
  RateGate g;
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(g.Take("example.org", t0, "m" + std::to_string(i)));
  EXPECT_EQ(g.RateOf("example.org"), "");
}

// "60/min": one message a second, no burst; the others are booked the following turns, in
// order, one each.
TEST(RateGateTest, PacesEvenlyAndBooksTurnsInOrder) {
  RateGate g;
  g.Configure(Rate(60, seconds(60), "60/min"), {});
  EXPECT_FALSE(g.Take("example.org", t0, "a"));
  EXPECT_EQ(g.Take("example.org", t0, "b"), t0 + seconds(1));
  EXPECT_EQ(g.Take("example.org", t0, "c"), t0 + seconds(2));
  EXPECT_EQ(g.Take("example.org", t0, "d"), t0 + seconds(3));
  // Back too early: told its turn again, which it keeps.
  EXPECT_EQ(g.Take("example.org", t0 + std::chrono::milliseconds(200), "b"), t0 + seconds(1));
  // Each booked message, back at its turn, goes.
  EXPECT_FALSE(g.Take("example.org", t0 + seconds(1), "b"));
  EXPECT_FALSE(g.Take("example.org", t0 + seconds(2), "c"));
  // Fresh mail between turns waits behind the booked ones, even at the very time of one.
  EXPECT_EQ(g.Take("example.org", t0 + seconds(3), "e"), t0 + seconds(4));
  // A booked one woken late does not push the next one out of its turn.
  EXPECT_FALSE(g.Take("example.org", t0 + std::chrono::milliseconds(3300), "d"));
  EXPECT_FALSE(g.Take("example.org", t0 + seconds(4), "e"));
  // A turn comes only once: back again, it is fresh mail.
  EXPECT_FALSE(g.Take("example.org", t0 + seconds(5), "e"));
  EXPECT_EQ(g.Take("example.org", t0 + seconds(5), "e"), t0 + seconds(6));
  // Another destination has its own turns.
  EXPECT_FALSE(g.Take("example.net", t0, "a"));
}

// Let through, then held back by another gate: it keeps its turn and goes when back, while
// fresh mail queues behind it.
TEST(RateGateTest, AHeldTurnIsKept) {
  RateGate g;
  g.Configure(Rate(60, seconds(60), "60/min"), {});
  EXPECT_FALSE(g.Take("example.org", t0, "a"));
  g.Hold("example.org", "a", t0);
  EXPECT_EQ(g.Take("example.org", t0 + seconds(5), "fresh"), t0 + seconds(5));
  EXPECT_FALSE(g.Take("example.org", t0 + seconds(5), "a"));
}

// Offers a fresh message every `fresh_every_ms` for `ms_total`, parked ones coming back at
// their turns (as the scheduler wakes them); returns {fresh sent, parked sent, still waiting}.
struct Offered {
  int fresh = 0, parked = 0, waiting = 0;
};
Offered Offer(RateGate& g, int fresh_every_ms, int ms_total, int parked_at_start) {
  Offered run;
  std::multimap<queue::TimePoint, std::string> booked;
  int n = 0;
  const auto offer = [&](queue::TimePoint now) {
    const std::string holder = "m" + std::to_string(n++);
    if (auto turn = g.Take("example.org", now, holder)) {
      booked.emplace(*turn, holder);
      return false;
    }
    return true;
  };
  if (parked_at_start > 0 && offer(t0)) ++run.fresh;  // the first goes
  for (int i = 0; i < parked_at_start; ++i) offer(t0);
  for (int ms = 0; ms <= ms_total; ms += 100) {
    const auto now = t0 + std::chrono::milliseconds(ms);
    while (!booked.empty() && booked.begin()->first <= now) {
      const std::string holder = booked.begin()->second;
      booked.erase(booked.begin());
      if (auto again = g.Take("example.org", now, holder)) {
        booked.emplace(*again, holder);
      } else {
        ++run.parked;
      }
    }
    if (ms % fresh_every_ms == 0 && offer(now)) ++run.fresh;
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
  EXPECT_FALSE(g.Take("example.org", t0, "first"));
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(g.Take("example.org", t0, "m" + std::to_string(i)));
  g.Configure(Rate(6000, seconds(60), "6000/min"), {});
  EXPECT_FALSE(g.Take("example.org", t0 + seconds(1), "x"));
  // The same rate again keeps what was booked.
  g.Configure(Rate(6000, seconds(60), "6000/min"), {});
  EXPECT_EQ(g.Take("example.org", t0 + seconds(1), "y"),
            t0 + seconds(1) + std::chrono::milliseconds(10));
}

TEST(RateGateTest, ADestinationsOwnRateWins) {
  RateGate g;
  g.Configure(Rate(60, seconds(60), "60/min"), {{"slow.example", Rate(1, seconds(3600), "1/h")}});
  EXPECT_EQ(g.RateOf("slow.example"), "1/h");
  EXPECT_EQ(g.RateOf("other.example"), "60/min");
  EXPECT_FALSE(g.Take("slow.example", t0, "a"));
  EXPECT_EQ(g.Take("slow.example", t0 + seconds(10), "b"), t0 + seconds(3600));
}

// What queue stats shows: the booked turns, until the parked mail comes back for them.
TEST(RateGateTest, BudgetsShowTheBookedTurnsUntilTaken) {
  RateGate g;
  g.Configure(Rate(600, seconds(60), "600/min"), {});
  EXPECT_TRUE(g.Budgets(t0).empty());
  std::vector<queue::TimePoint> turns;
  EXPECT_FALSE(g.Take("b.example", t0, "first"));
  for (int i = 0; i < 29; ++i) turns.push_back(*g.Take("b.example", t0, "m" + std::to_string(i)));
  auto b = g.Budgets(t0);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b["b.example"].rate, "600/min");
  EXPECT_EQ(b["b.example"].booked, 29u);
  EXPECT_EQ(b["b.example"].next, t0 + seconds(3));
  for (size_t i = 0; i < turns.size(); ++i) {
    EXPECT_FALSE(g.Take("b.example", turns[i], "m" + std::to_string(i)));
  }
  EXPECT_TRUE(g.Budgets(turns.back() + seconds(1)).empty());
}

}  // namespace
}  // namespace danerelay::relay
