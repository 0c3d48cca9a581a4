#include "relay/delivery/scheduler.hpp"

#include <algorithm>

namespace danerelay::relay {

std::size_t Scheduler::ToClaim(TimePoint now, std::size_t active) const {
  if (active >= max_parallel_ || !next_due_ || *next_due_ > now) return 0;
  return max_parallel_ - active;
}

Scheduler::TimePoint Scheduler::WakeAt(TimePoint now) const {
  // Mail already due was not claimed for want of room: a finished delivery kicks the loop, so
  // waiting for "now" here would only spin.
  const TimePoint tick = now + kTick;
  return next_due_ && *next_due_ > now ? std::min(*next_due_, tick) : tick;
}

ExpiryClock::Reading ExpiryClock::Read(TimePoint wall, Steady steady) {
  Reading r{wall};
  if (last_) {
    // Never more than the real time elapsed since the last reading; a clock stepped back is
    // followed (expiry then simply happens later).
    const TimePoint bound = *last_ + std::chrono::duration_cast<queue::Clock::duration>(
                                         std::max(steady - last_steady_, Steady::duration{}));
    r.now = std::min(wall, bound);
  }
  // Report a jump once, when it happens, not on every reading behind it.
  const auto lag = wall - r.now;
  if (lag > lag_) r.jumped = std::chrono::duration_cast<std::chrono::seconds>(lag - lag_);
  lag_ = lag;
  last_ = r.now;
  last_steady_ = steady;
  return r;
}

}  // namespace danerelay::relay
