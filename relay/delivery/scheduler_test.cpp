#include "relay/delivery/scheduler.hpp"

#include <gtest/gtest.h>

namespace danerelay::relay {
namespace {

using std::chrono::hours;
using std::chrono::seconds;
const queue::TimePoint kT0{std::chrono::seconds(1'790'000'000)};

TEST(SchedulerTest, ClaimsOnlyWhatIsDueAndFits) {
  Scheduler s(20);
  EXPECT_EQ(s.ToClaim(kT0, 0), 0u);  // nothing known
  EXPECT_EQ(s.WakeAt(kT0), kT0 + Scheduler::kTick);
  s.Known(kT0 + seconds(300));
  EXPECT_EQ(s.ToClaim(kT0, 0), 0u);  // not yet due
  EXPECT_EQ(s.WakeAt(kT0), kT0 + Scheduler::kTick);
  EXPECT_EQ(s.WakeAt(kT0 + seconds(300) - Scheduler::kTick / 2), kT0 + seconds(300));
  s.Due(kT0);  // new mail
  EXPECT_EQ(s.ToClaim(kT0, 5), 15u);
  EXPECT_EQ(s.ToClaim(kT0, 20), 0u);  // no room
  // Due but no room: a finished delivery kicks the loop; the clock only ticks (no spinning).
  EXPECT_EQ(s.WakeAt(kT0 + seconds(1)), kT0 + seconds(1) + Scheduler::kTick);
  s.Due(kT0 + hours(1));  // a later deferral does not postpone what is due
  EXPECT_EQ(s.next_due(), kT0);
  s.Known(std::nullopt);  // the claim emptied the queue
  EXPECT_EQ(s.ToClaim(kT0, 0), 0u);
}

TEST(ExpiryClockTest, FollowsTheWallClockButNotItsJumpsForward) {
  ExpiryClock c;
  const auto s0 = std::chrono::steady_clock::time_point{} + hours(1);
  EXPECT_EQ(c.Read(kT0, s0).now, kT0);
  // Ten real seconds, ten wall seconds.
  auto r = c.Read(kT0 + seconds(10), s0 + seconds(10));
  EXPECT_EQ(r.now, kT0 + seconds(10));
  EXPECT_EQ(r.jumped, seconds(0));
  // The wall clock is stepped a year ahead in one real second: expiry moves one second.
  r = c.Read(kT0 + hours(24 * 365), s0 + seconds(11));
  EXPECT_EQ(r.now, kT0 + seconds(11));
  EXPECT_GT(r.jumped, hours(24 * 364));
  // And then goes on at real speed from there.
  r = c.Read(kT0 + hours(24 * 365) + seconds(5), s0 + seconds(16));
  EXPECT_EQ(r.now, kT0 + seconds(16));
  EXPECT_EQ(r.jumped, seconds(0));  // reported once
  // A clock stepped back is followed.
  r = c.Read(kT0, s0 + seconds(17));
  EXPECT_EQ(r.now, kT0);
}

}  // namespace
}  // namespace danerelay::relay
