#include "relay/delivery/suspension_watch.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "relay/daemon/logging.hpp"
#include "relay/daemon/metrics.hpp"

namespace danerelay::relay {
namespace {

std::string Utc(queue::TimePoint t) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}",
                     std::chrono::time_point_cast<std::chrono::seconds>(t));
}

// A Prometheus label value: backslash, quote and newline escaped.
std::string LabelValue(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    out += c == '\n' ? 'n' : c;
  }
  return out;
}

void Gauge(const std::string& kind, const std::string& name, bool on) {
  if (kind != "domain") return;  // sites get their own family when they exist
  const std::string labels = fmt::format("domain=\"{}\"", LabelValue(name));
  if (on) {
    Metrics::Get().SetGauge("danerelay_domain_suspended", labels, 1);
  } else {
    Metrics::Get().EraseGauge("danerelay_domain_suspended", labels);
  }
}

}  // namespace

void SuspensionWatch::Note(const std::vector<queue::Store::Suspension>& rows,
                           queue::TimePoint now) {
  std::map<std::string, Seen> next;
  for (const auto& s : rows) {
    if (s.until <= now) continue;
    const std::string key = s.kind + " " + s.name;
    next[key] = Seen{s.until, s.reason};
    const auto old = in_force_.find(key);
    if (old != in_force_.end() && old->second.until == s.until && old->second.reason == s.reason) {
      continue;
    }
    Log(Service::kQmgr)
        .info("{}: suspended until {} by {}: {}", key, Utc(s.until), s.user,
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
}

}  // namespace danerelay::relay
