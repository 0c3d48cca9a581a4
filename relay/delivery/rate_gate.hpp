#pragma once
// [shaping] message_rate: at most N messages per window to one destination, paced evenly (one
// every window/N, no burst beyond half an interval's tolerance: "60/min" lets 61 through in
// the first minute at most). A message
// over the rate is not delivered and not deferred: it is booked the next free turn, and the
// agent parks it until then (no attempt counted; the scheduler wakes it, nothing polls). Turns
// are handed out in order, so a backlog drains at the rate in the order it was booked, and
// each parked message wakes alone instead of the whole backlog at every free turn. While turns
// are booked, fresh mail is booked behind them: it never takes a parked message's turn, so a
// backlog cannot be starved by a steady inflow.
// In memory: a restart starts every destination afresh (parked mail keeps its turn, and is
// fresh mail when it wakes).
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>

#include "queue/message.hpp"
#include "relay/options.hpp"

namespace danerelay::relay {

class RateGate {
 public:
  using TimePoint = queue::TimePoint;

  // `fallback`: the rate of every destination without its own (none: unlimited).
  void Configure(std::optional<QuotaLimit> fallback, std::map<std::string, QuotaLimit> own);

  // A new rate for a destination starts its turns afresh (mail already parked keeps the turn
  // it was given; `queue flush` books it again).
  // One message of `holder` (the agent: message ID and recipient domain) to `destination` at
  // `now`: nullopt when it may go now (and it is counted), else the turn booked for it. A
  // holder back for the turn booked for it goes once the turn has come (up to half an interval
  // early), whatever fresh mail did; before that, it is told its turn again.
  std::optional<TimePoint> Take(const std::string& destination, TimePoint now,
                                const std::string& holder);
  // Take let `holder` go, but it could not (another gate held it back): it keeps the turn as
  // booked at `turn` and goes when it comes back.
  void Hold(const std::string& destination, const std::string& holder, TimePoint turn);
  // The rate that applies to `destination`, as written ("" for none).
  std::string RateOf(const std::string& destination) const;

  // The budget of each destination that has spent some at `now` (for queue stats): its rate,
  // when the next fresh message may go, and the turns booked for parked ones.
  struct Budget {
    std::string rate;
    TimePoint next;
    std::size_t booked = 0;
  };
  std::map<std::string, Budget> Budgets(TimePoint now) const;

 private:
  const QuotaLimit* LimitOf(const std::string& destination) const;
  void Prune(TimePoint now);

  struct Turns {
    TimePoint next;                            // the earliest time the next fresh message may go
    TimePoint booked;                          // the end of the turns booked for parked messages
    std::map<std::string, TimePoint> waiting;  // the booked turns not yet taken, by holder
    TimePoint swept;                           // when turns given up were last removed
  };
  std::optional<QuotaLimit> fallback_;
  std::map<std::string, QuotaLimit> own_;
  std::unordered_map<std::string, Turns> turns_;
  std::size_t prune_at_ = 10000;  // grows with the destinations in use: pruning stays amortised
};

}  // namespace danerelay::relay
