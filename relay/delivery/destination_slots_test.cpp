// Connections per site: the limits, and limits lowered for a while by [[shaping.on_reply]].
#include "relay/delivery/destination_slots.hpp"

#include <gtest/gtest.h>

namespace danerelay::relay {
namespace {

using std::chrono::seconds;

TEST(DestinationSlotsTest, ASitesOwnLimitAndTheDefault) {
  asio::io_context io;
  DestinationSlots slots(io);
  slots.SetLimits(20, {{"google", 4}});
  EXPECT_EQ(slots.LimitOf("google"), 4u);
  EXPECT_EQ(slots.LimitOf("mx.example.net"), 20u);
}

// The lowest limit in force counts, each until its own end: a later, milder one neither
// lifts a stricter one early nor is lost when the stricter one ends.
TEST(DestinationSlotsTest, TheLowestLoweredLimitInForceCounts) {
  asio::io_context io;
  DestinationSlots slots(io);
  slots.SetLimits(20, {});
  slots.Lower("google", 1, seconds(1));
  slots.Lower("google", 5, seconds(3600));
  EXPECT_EQ(slots.LimitOf("google"), 1u);
  EXPECT_EQ(slots.LimitOf("microsoft"), 20u);
  io.run_for(std::chrono::milliseconds(1200));  // the first one's end
  EXPECT_EQ(slots.LimitOf("google"), 5u);
  slots.Lower("google", 30, seconds(3600));  // above the site's own: no effect
  EXPECT_EQ(slots.LimitOf("google"), 5u);
}

}  // namespace
}  // namespace danerelay::relay
