#include "relay/delivery/suspension_watch.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "relay/daemon/logging.hpp"
#include "relay/daemon/metrics.hpp"

namespace danerelay::relay {
namespace {

void Gauge(const std::string& kind, const std::string& name, bool on) {
  if (kind != "domain" && kind != "site") return;
  const std::string family = fmt::format("danerelay_{}_suspended", kind);
  const std::string labels = fmt::format("{}=\"{}\"", kind, LabelValue(name));
  if (on) {
    Metrics::Get().SetGauge(family, labels, 1);
  } else {
    Metrics::Get().EraseGauge(family, labels);
  }
}

std::string Key(const std::string& kind, const std::string& name) { return kind + " " + name; }

}  // namespace

std::string Utc(queue::TimePoint t) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}",
                     std::chrono::time_point_cast<std::chrono::seconds>(t));
}

void SuspensionWatch::Note(const std::vector<queue::Store::Suspension>& rows, queue::TimePoint now,
                           std::uint64_t read) {
  std::map<std::string, Seen> next;
  for (const auto& s : rows) {
    if (s.until <= now) continue;
    const std::string key = Key(s.kind, s.name);
    next[key] = Seen{s.until, s.reason};
    const auto old = in_force_.find(key);
    if (old != in_force_.end() && old->second.until == s.until && old->second.reason == s.reason) {
      continue;
    }
    Log(Service::kQmgr)
        .info("{}: suspended until {} by {}{}: {}", key, Utc(s.until), s.user,
              s.origin == "operator" ? "" : " (" + s.origin + ")",
              s.reason.empty() ? "no reason given" : s.reason);
    Gauge(s.kind, s.name, true);
  }
  for (const auto& [key, seen] : in_force_) {
    if (next.contains(key)) continue;
    const bool ended = seen.until <= now;
    Log(Service::kQmgr).info("{}: {}", key, ended ? "suspension ended" : "resumed");
    const auto space = key.find(' ');
    Gauge(key.substr(0, space), key.substr(space + 1), false);
  }
  in_force_ = std::move(next);
  // The daemon's own: read back (in_force_ has them now), ended, or resumed by the operator
  // (a read that started after the write landed does not show them).
  std::erase_if(own_, [&](const auto& o) {
    return in_force_.contains(o.first) || o.second.until <= now || read > o.second.landed_before;
  });
}

std::optional<queue::TimePoint> SuspensionWatch::Until(const std::string& kind,
                                                       const std::string& name,
                                                       queue::TimePoint now) const {
  const std::string key = Key(kind, name);
  std::optional<queue::TimePoint> until;
  if (const auto it = in_force_.find(key); it != in_force_.end()) until = it->second.until;
  if (const auto it = own_.find(key); it != own_.end()) {
    until = until ? std::max(*until, it->second.until) : it->second.until;
  }
  if (until && *until <= now) until.reset();
  return until;
}

bool SuspensionWatch::Decide(const queue::Store::Suspension& s, queue::TimePoint now) {
  const auto until = Until(s.kind, s.name, now);
  if (until && *until >= s.until) return false;
  own_[Key(s.kind, s.name)] = Own{s.until};
  return true;
}

void SuspensionWatch::Forget(const std::string& kind, const std::string& name) {
  const std::string key = Key(kind, name);
  own_.erase(key);
  // Ended for Until(); the next read lacks the row, and the end is logged and the gauge goes.
  if (const auto it = in_force_.find(key); it != in_force_.end()) {
    it->second.until = queue::TimePoint::min();
  }
}

void SuspensionWatch::Landed(const std::string& kind, const std::string& name) {
  if (const auto it = own_.find(Key(kind, name)); it != own_.end()) {
    it->second.landed_before = reads_;
  }
}

}  // namespace danerelay::relay
