#include "relay/delivery/rate_gate.hpp"

#include <gtest/gtest.h>

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
  EXPECT_FALSE(g.Take("example.org", t0 + seconds(1)));
  EXPECT_FALSE(g.Take("example.org", t0 + seconds(2)));
  // Fresh mail between turns waits behind the booked ones.
  EXPECT_EQ(g.Take("example.org", t0 + std::chrono::milliseconds(2400)), t0 + seconds(4));
  // A booked one woken late does not push the next one out of its turn.
  EXPECT_FALSE(g.Take("example.org", t0 + std::chrono::milliseconds(3300)));
  EXPECT_FALSE(g.Take("example.org", t0 + seconds(4)));
  // Another destination has its own turns.
  EXPECT_FALSE(g.Take("example.net", t0));
}

TEST(RateGateTest, AtMostOnePlusTheRateInAWindow) {
  RateGate g;
  g.Configure(Rate(60, seconds(60), "60/min"), {});
  int sent = 0;
  // 200 messages offered every 100 ms for a minute (a parked one comes back as fresh mail).
  for (int ms = 0; ms <= 60'000; ms += 100) {
    for (int k = 0; k < 5; ++k) {
      if (!g.Take("example.org", t0 + std::chrono::milliseconds(ms))) ++sent;
    }
  }
  EXPECT_LE(sent, 61);
  EXPECT_GE(sent, 60);
}

TEST(RateGateTest, ADestinationsOwnRateWins) {
  RateGate g;
  g.Configure(Rate(60, seconds(60), "60/min"), {{"slow.example", Rate(1, seconds(3600), "1/h")}});
  EXPECT_EQ(g.RateOf("slow.example"), "1/h");
  EXPECT_EQ(g.RateOf("other.example"), "60/min");
  EXPECT_FALSE(g.Take("slow.example", t0));
  EXPECT_EQ(g.Take("slow.example", t0 + seconds(10)), t0 + seconds(3600));
}

}  // namespace
}  // namespace danerelay::relay
