#pragma once
// [shaping] message_rate: at most N messages per window to one destination, paced evenly (one
// every window/N, no burst beyond half an interval's tolerance: "60/min" lets 61 through in
// the first minute at most). A message
// over the rate is not delivered and not deferred: it is booked the next free turn, and the
// agent parks it until then (no attempt counted; the scheduler wakes it, nothing polls). Turns
// are handed out in order, so a backlog drains at the rate in the order it was booked, and
// each parked message wakes alone instead of the whole backlog at every free turn.
// In memory: a restart starts every destination afresh (parked mail keeps its turn).
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

  // One message to `destination` at `now`: nullopt when it may go now (and it is counted),
  // else the turn booked for it.
  std::optional<TimePoint> Take(const std::string& destination, TimePoint now);
  // The rate that applies to `destination`, as written ("" for none).
  std::string RateOf(const std::string& destination) const;

 private:
  const QuotaLimit* LimitOf(const std::string& destination) const;
  void Prune(TimePoint now);

  struct Turns {
    TimePoint next;    // the earliest time the next message may go
    TimePoint booked;  // the end of the turns booked for parked messages
  };
  std::optional<QuotaLimit> fallback_;
  std::map<std::string, QuotaLimit> own_;
  std::unordered_map<std::string, Turns> turns_;
};

}  // namespace danerelay::relay
