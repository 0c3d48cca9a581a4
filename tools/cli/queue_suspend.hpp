#pragma once
// danerelay queue suspend|resume: the operator stops delivery to a domain or a site for a while
// (its provider is in maintenance, blocks us, or asks us to slow down). Held in the queue
// database, so it outlives restarts of the daemon, which notices it within a tick. Due mail of
// a suspended domain or site waits without an attempt (queue/store_suspend.cpp); resume makes
// it due now.
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "config/config.hpp"
#include "queue/store.hpp"

namespace danerelay::tools {

// What a suspension is of: exactly one of the two. A site is named as the daemon names it
// (AttemptRecord::site): "google", "mx1.example.net,mx2.example.net", "route [192.0.2.1]:2525".
struct SuspendTarget {
  std::string domain;
  std::string site;
};

struct SuspendRequest {
  SuspendTarget target;
  std::string duration;  // "2h", "30m", "1d"
  std::string reason;
};

// Exit status: 0 done, 64 a bad target or duration, 2 a queue error.
int RunSuspend(const config::Config& config, const SuspendRequest& req, std::ostream& out,
               std::ostream& err);
// Exit status: 0 done, 1 it was not suspended, 64 a bad target, 2 a queue error.
int RunResume(const config::Config& config, const SuspendTarget& target, std::ostream& out,
              std::ostream& err);

// For `queue stats`: "domain example.net: suspended until 2026-12-05T19:00:00Z: reason (by root)".
std::vector<std::string> SuspensionLines(const std::vector<queue::Store::Suspension>& in_force);
nlohmann::json SuspensionsJson(const std::vector<queue::Store::Suspension>& in_force);
// One suspension as `queue stats` shows it beside a site: "suspended until T: reason (by user)".
std::string SuspensionText(const queue::Store::Suspension& s);
nlohmann::json SuspensionJson(const queue::Store::Suspension& s);

}  // namespace danerelay::tools
