#pragma once
// danerelay queue suspend|resume: the operator stops delivery to a domain for a while (its
// provider is in maintenance, blocks us, or asks us to slow down). Held in the queue database,
// so it outlives restarts of the daemon, which notices it within a tick. Due mail of a
// suspended domain waits without an attempt (queue/store_suspend.cpp); resume makes it due now.
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "config/config.hpp"
#include "queue/store.hpp"

namespace danerelay::tools {

struct SuspendRequest {
  std::string domain;
  std::string duration;  // "2h", "30m", "1d"
  std::string reason;
};

// Exit status: 0 done, 64 a bad domain or duration, 2 a queue error.
int RunSuspend(const config::Config& config, const SuspendRequest& req, std::ostream& out,
               std::ostream& err);
// Exit status: 0 done, 1 the domain was not suspended, 2 a queue error.
int RunResume(const config::Config& config, const std::string& domain, std::ostream& out,
              std::ostream& err);

// For `queue stats`: "suspended domain example.net until 2026-12-05T19:00:00Z: reason (by root)".
std::vector<std::string> SuspensionLines(const std::vector<queue::Store::Suspension>& in_force);
nlohmann::json SuspensionsJson(const std::vector<queue::Store::Suspension>& in_force);

}  // namespace danerelay::tools
