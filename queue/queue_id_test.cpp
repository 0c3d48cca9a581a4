#include "queue/queue_id.hpp"

#include <gtest/gtest.h>

#include <set>

namespace danerelay::queue {
namespace {

TEST(QueueIdTest, SortsByArrivalTime) {
  QueueIdGenerator gen;
  const TimePoint t0 = TimePoint(std::chrono::seconds(1'790'000'000));
  const std::string a = gen.Next(t0);
  const std::string b = gen.Next(t0 + std::chrono::microseconds(1));
  const std::string c = gen.Next(t0 + std::chrono::hours(24 * 365));
  EXPECT_EQ(a.size(), 14u);
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_EQ(QueueIdTime(a), t0);
  EXPECT_EQ(QueueIdTime(c), t0 + std::chrono::hours(24 * 365));
}

TEST(QueueIdTest, UniqueAndIncreasingWhenTheClockStandsStillOrStepsBack) {
  QueueIdGenerator gen;
  const TimePoint t0 = TimePoint(std::chrono::seconds(1'790'000'000));
  std::set<std::string> seen;
  std::string last;
  // More than the 32768 sequence numbers of one microsecond, then a clock step back.
  for (int i = 0; i < 40000; ++i) {
    const std::string id = gen.Next(i < 35000 ? t0 : t0 - std::chrono::seconds(10));
    EXPECT_GT(id, last);
    last = id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 40000u);
}

TEST(QueueIdTest, RejectsForeignIds) {
  EXPECT_FALSE(QueueIdTime("short"));
  EXPECT_FALSE(QueueIdTime("0123456789ABCI"));  // I is not in the alphabet
}

}  // namespace
}  // namespace danerelay::queue
