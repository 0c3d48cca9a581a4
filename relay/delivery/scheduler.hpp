#pragma once
// When to look at the queue: the scheduler only decides *when* and *how many*; it never touches
// storage (OpenSMTPD's split). It keeps the next due time in memory, as Postfix's qmgr keeps its
// active queue, so the daemon claims mail when some is due instead of scanning on a timer:
// rebuilt from the store at start, moved earlier by new mail and by deferrals, and re-read
// when the store says someone else (the command line) changed it.
//
// ExpiryClock: the time expiry is judged by. The wall clock, but it may not advance faster
// than real time between two passes, so a clock stepped forward by a year does not expire and
// bounce the whole queue at once.
#include <chrono>
#include <cstddef>
#include <optional>

#include "queue/message.hpp"

namespace danerelay::relay {

class Scheduler {
 public:
  using TimePoint = queue::TimePoint;
  // How often the daemon looks even when nothing is known to be due: the command line's
  // changes (flush, release) take effect within this. Looking is one PRAGMA data_version.
  static constexpr std::chrono::milliseconds kTick{200};

  explicit Scheduler(std::size_t max_parallel) : max_parallel_(max_parallel) {}
  void SetMaxParallel(std::size_t n) { max_parallel_ = n; }

  // What the store says is the earliest due recipient (nullopt: none): at start, after each
  // claim (a full claim may have left more due mail behind), after the command line's changes.
  void Known(std::optional<TimePoint> next_due) { next_due_ = next_due; }
  // Mail became due at `t` (queued now, deferred until t, released by an operator).
  void Due(TimePoint t) {
    if (!next_due_ || t < *next_due_) next_due_ = t;
  }
  // How many messages to claim now: room for them, and something known to be due.
  std::size_t ToClaim(TimePoint now, std::size_t active) const;
  // When to look next, unless kicked first (a delivery ended, mail arrived): when the next
  // mail falls due, at the latest one tick from now.
  TimePoint WakeAt(TimePoint now) const;
  std::optional<TimePoint> next_due() const { return next_due_; }

 private:
  std::size_t max_parallel_;
  std::optional<TimePoint> next_due_;
};

class ExpiryClock {
 public:
  using TimePoint = queue::TimePoint;
  using Steady = std::chrono::steady_clock::time_point;

  // The time to judge expiry at, given the wall clock and a monotonic clock read together.
  // `jumped` tells how far the wall clock ran ahead of real time since the last reading (zero
  // normally).
  struct Reading {
    TimePoint now;
    std::chrono::seconds jumped{0};
  };
  Reading Read(TimePoint wall, Steady steady);

 private:
  std::optional<TimePoint> last_;
  Steady last_steady_;
  queue::Clock::duration lag_{0};  // how far the wall clock is ahead of the judged time
};

}  // namespace danerelay::relay
