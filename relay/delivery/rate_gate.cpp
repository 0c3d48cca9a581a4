#include "relay/delivery/rate_gate.hpp"

#include <algorithm>

namespace danerelay::relay {
namespace {

// Destinations whose turns all lie in the past are forgotten once this many are known.
constexpr std::size_t kPruneAt = 10000;

queue::Clock::duration Interval(const QuotaLimit& l) {
  return std::chrono::duration_cast<queue::Clock::duration>(l.window) /
         static_cast<std::int64_t>(l.count);
}

}  // namespace

void RateGate::Configure(std::optional<QuotaLimit> fallback,
                         std::map<std::string, QuotaLimit> own) {
  fallback_ = std::move(fallback);
  own_ = std::move(own);
}

const QuotaLimit* RateGate::LimitOf(const std::string& destination) const {
  if (auto it = own_.find(destination); it != own_.end()) return &it->second;
  return fallback_ ? &*fallback_ : nullptr;
}

std::string RateGate::RateOf(const std::string& destination) const {
  const QuotaLimit* l = LimitOf(destination);
  return l ? l->text : "";
}

std::optional<RateGate::TimePoint> RateGate::Take(const std::string& destination, TimePoint now) {
  const QuotaLimit* limit = LimitOf(destination);
  if (!limit || limit->count == 0) return std::nullopt;
  if (turns_.size() >= kPruneAt) Prune(now);
  const auto interval = Interval(*limit);
  auto [it, fresh] = turns_.try_emplace(destination, Turns{now, now});
  Turns& t = it->second;
  // The generic cell rate algorithm (ITU-T I.371): a message may come up to half an interval
  // early, as a parked one woken a little late after one woken on time does, and the next turn
  // is reckoned from the schedule, not from the message, so the lateness is not passed on. In
  // any window W at most W / interval + 1 go (61 in a minute at "60/min").
  if (now + interval / 2 >= t.next) {
    t.next = std::max(t.next, now) + interval;
    return std::nullopt;
  }
  const TimePoint turn = std::max(t.next, t.booked);
  t.booked = turn + interval;
  return turn;
}

void RateGate::Prune(TimePoint now) {
  std::erase_if(turns_,
                [now](const auto& e) { return e.second.next <= now && e.second.booked <= now; });
}

}  // namespace danerelay::relay
