#include "relay/delivery/dead_destinations.hpp"

#include <gtest/gtest.h>

namespace danerelay::relay {
namespace {

using V = DeadDestinations::Verdict;

TEST(DeadDestinationsTest, DeadAtTheLimitOnceThenAliveWhenAServerAnswers) {
  DeadDestinations d;
  EXPECT_EQ(d.Note("a.example", 2, false, 3), V::kNothing);
  EXPECT_FALSE(d.Dead("a.example", 3));
  EXPECT_EQ(d.Note("a.example", 5, false, 3), V::kDead);
  EXPECT_TRUE(d.Dead("a.example", 3));
  EXPECT_EQ(d.Failures("a.example"), 3u);                    // capped
  EXPECT_EQ(d.Note("a.example", 1, false, 3), V::kNothing);  // a failed probe: still dead
  EXPECT_TRUE(d.Dead("a.example", 3));
  EXPECT_FALSE(d.Dead("b.example", 3));  // per domain
  EXPECT_EQ(d.Note("a.example", 0, true, 3), V::kAlive);
  EXPECT_FALSE(d.Dead("a.example", 3));
  EXPECT_EQ(d.Failures("a.example"), 0u);
}

TEST(DeadDestinationsTest, AnAnswerResetsTheCountAndZeroTurnsItOff) {
  DeadDestinations d;
  EXPECT_EQ(d.Note("a.example", 2, false, 3), V::kNothing);
  EXPECT_EQ(d.Note("a.example", 1, true, 3), V::kNothing);  // in a row: reset
  EXPECT_EQ(d.Note("a.example", 2, false, 3), V::kNothing);
  EXPECT_FALSE(d.Dead("a.example", 3));
  EXPECT_EQ(d.Note("c.example", 100, false, 0), V::kNothing);
  EXPECT_FALSE(d.Dead("c.example", 0));
}

}  // namespace
}  // namespace danerelay::relay
