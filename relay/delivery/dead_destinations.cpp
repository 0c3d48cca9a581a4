#include "relay/delivery/dead_destinations.hpp"

#include <algorithm>

namespace danerelay::relay {

DeadDestinations::Verdict DeadDestinations::Note(const std::string& domain, std::uint32_t failures,
                                                 bool reached, std::uint32_t limit) {
  const auto it = failures_.find(domain);
  const std::uint32_t before = it == failures_.end() ? 0 : it->second;
  if (reached) {
    if (it != failures_.end()) failures_.erase(it);
    return limit > 0 && before >= limit ? Verdict::kAlive : Verdict::kNothing;
  }
  if (failures == 0 || limit == 0) return Verdict::kNothing;
  // Capped at the limit: a dead domain stays dead until a server answers, whatever it costs.
  const std::uint32_t now = std::min(limit, before + std::min(failures, limit));
  failures_[domain] = now;
  return before < limit && now >= limit ? Verdict::kDead : Verdict::kNothing;
}

bool DeadDestinations::Dead(const std::string& domain, std::uint32_t limit) const {
  return limit > 0 && Failures(domain) >= limit;
}

std::uint32_t DeadDestinations::Failures(const std::string& domain) const {
  const auto it = failures_.find(domain);
  return it == failures_.end() ? 0 : it->second;
}

}  // namespace danerelay::relay
