#pragma once
// What the daemon says about the operator's suspensions (queue suspend/resume): it reads the
// table every tick (queue/upkeep.cpp) and this logs each change once, as it sees it (suspended,
// changed, resumed, ended), and keeps the gauge danerelay_domain_suspended{domain}. The
// suspension itself is enforced by the store's claim (queue/store_suspend.cpp), not here.
#include <map>
#include <string>
#include <vector>

#include "queue/store.hpp"

namespace danerelay::relay {

class SuspensionWatch {
 public:
  // `rows`: the whole table, as read at `now`. Logs and counts what changed since the last call.
  void Note(const std::vector<queue::Store::Suspension>& rows, queue::TimePoint now);

 private:
  struct Seen {
    queue::TimePoint until;
    std::string reason;
  };
  std::map<std::string, Seen> in_force_;  // "kind name"
};

}  // namespace danerelay::relay
