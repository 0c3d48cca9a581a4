#pragma once
// What the daemon knows and says about suspensions: the operator's (queue suspend/resume) and
// its own ([[shaping.on_reply]]). It reads the table every tick (queue/upkeep.cpp) and this
// logs each change once, as it sees it (suspended, changed, resumed, ended), and keeps the
// gauges danerelay_domain_suspended{domain} and danerelay_site_suspended{site}. The store's claim
// enforces a suspension (queue/store_suspend.cpp); Until() serves mail claimed before it was known,
// which must not connect either, and knows the daemon's own suspensions before their write lands.
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "queue/store.hpp"

namespace danerelay::relay {

// "2026-12-05T19:00:00Z", as the log and `queue stats` write times.
std::string Utc(queue::TimePoint t);

class SuspensionWatch {
 public:
  // `rows`: the whole table, as read at `now` by the upkeep read number `read` (Started()).
  // Logs and counts what changed since the last call.
  void Note(const std::vector<queue::Store::Suspension>& rows, queue::TimePoint now,
            std::uint64_t read);
  // Numbers the upkeep reads, for Note.
  std::uint64_t Started() { return ++reads_; }

  // When the suspension of `kind` ("domain", "site") `name` in force at `now` ends; nullopt:
  // none.
  std::optional<queue::TimePoint> Until(const std::string& kind, const std::string& name,
                                        queue::TimePoint now) const;

  // The daemon's own suspension `s` (origin "on_reply"), before its write: false when one in
  // force lasts as long already (then nothing is to be written).
  bool Decide(const queue::Store::Suspension& s, queue::TimePoint now);
  // Its write landed: a table read that starts after this and lacks it means `queue resume`.
  void Landed(const std::string& kind, const std::string& name);
  // The daemon ended its own suspension of `kind` `name` (a dead destination answered).
  void Forget(const std::string& kind, const std::string& name);

 private:
  struct Seen {
    queue::TimePoint until;
    std::string reason;
  };
  struct Own {
    queue::TimePoint until;
    std::uint64_t landed_before = std::numeric_limits<std::uint64_t>::max();  // a read number
  };
  std::map<std::string, Seen> in_force_;  // "kind name"
  std::map<std::string, Own> own_;        // "kind name": the daemon's, not yet read back
  std::uint64_t reads_ = 0;
};

}  // namespace danerelay::relay
