#include "relay/delivery/rate_gate.hpp"

#include <algorithm>

namespace danerelay::relay {
namespace {

// Destinations whose turns all lie in the past are forgotten once this many are known.
constexpr std::size_t kPruneAt = 10000;
// A booked turn not taken this long after it came (the message was deleted, delivered by a
// flush, or woke later than this) is given up: it holds fresh mail back no longer.
constexpr auto kTurnKept = std::chrono::minutes(2);
constexpr auto kSweepEvery = std::chrono::seconds(10);

queue::Clock::duration Interval(const QuotaLimit& l) {
  return std::chrono::duration_cast<queue::Clock::duration>(l.window) /
         static_cast<std::int64_t>(l.count);
}

}  // namespace

void RateGate::Configure(std::optional<QuotaLimit> fallback,
                         std::map<std::string, QuotaLimit> own) {
  const auto text = [](const QuotaLimit* l) { return l ? l->text : std::string(); };
  std::vector<std::string> before;
  for (const auto& [destination, turns] : turns_) before.push_back(text(LimitOf(destination)));
  fallback_ = std::move(fallback);
  own_ = std::move(own);
  size_t i = 0;
  std::erase_if(turns_, [&](const auto& e) { return text(LimitOf(e.first)) != before[i++]; });
}

const QuotaLimit* RateGate::LimitOf(const std::string& destination) const {
  if (auto it = own_.find(destination); it != own_.end()) return &it->second;
  return fallback_ ? &*fallback_ : nullptr;
}

std::string RateGate::RateOf(const std::string& destination) const {
  const QuotaLimit* l = LimitOf(destination);
  return l ? l->text : "";
}

std::optional<RateGate::TimePoint> RateGate::Take(const std::string& destination, TimePoint now,
                                                  const std::string& holder) {
  const QuotaLimit* limit = LimitOf(destination);
  if (!limit || limit->count == 0) return std::nullopt;
  if (turns_.size() >= prune_at_) {
    Prune(now);
    prune_at_ = std::max(kPruneAt, 2 * turns_.size());
  }
  const auto interval = Interval(*limit);
  auto [it, fresh] = turns_.try_emplace(destination, Turns{now, now, {}, now});
  Turns& t = it->second;
  if (now - t.swept >= kSweepEvery) {  // a pass over all: not at every message
    std::erase_if(t.waiting, [&](const auto& w) { return w.second + kTurnKept < now; });
    t.swept = now;
  }
  // A parked message back for its turn: it goes (up to half an interval early, as below).
  if (const auto mine = t.waiting.find(holder); mine != t.waiting.end()) {
    if (now + interval / 2 < mine->second) return mine->second;  // woken early: not yet
    t.waiting.erase(mine);
    return std::nullopt;
  }
  // The generic cell rate algorithm (ITU-T I.371): a message may come up to half an interval
  // early, as a parked one woken a little late after one woken on time does, and the next turn
  // is reckoned from the schedule, not from the message, so the lateness is not passed on. In
  // any window W at most W / interval + 1 go (61 in a minute at "60/min"). Only while no turn
  // is booked: then fresh mail queues behind the parked.
  if (t.waiting.empty() && now + interval / 2 >= t.next) {
    t.next = std::max(t.next, now) + interval;
    return std::nullopt;
  }
  const TimePoint turn = std::max({t.next, t.booked, now});
  t.booked = turn + interval;
  t.next = std::max(t.next, t.booked);
  t.waiting[holder] = turn;
  return turn;
}

void RateGate::Hold(const std::string& destination, const std::string& holder, TimePoint turn) {
  if (!LimitOf(destination)) return;
  auto it = turns_.find(destination);
  if (it != turns_.end()) it->second.waiting[holder] = turn;
}

std::map<std::string, RateGate::Budget> RateGate::Budgets(TimePoint now) const {
  std::map<std::string, Budget> out;
  for (const auto& [destination, t] : turns_) {
    const QuotaLimit* limit = LimitOf(destination);
    if (!limit || (t.next <= now && t.waiting.empty())) continue;
    out[destination] = {limit->text, std::max({t.next, t.booked, now}), t.waiting.size()};
  }
  return out;
}

void RateGate::Prune(TimePoint now) {
  std::erase_if(turns_, [now](const auto& e) {
    return e.second.next <= now && e.second.booked <= now && e.second.waiting.empty();
  });
}

}  // namespace danerelay::relay
