#pragma once
// What a reload (SIGHUP) cannot change in a running daemon. The daemon applies the rest of a new
// configuration live and names these in its log, so that a change is never silently ignored.
#include <string>
#include <vector>

#include "config/config.hpp"

namespace danerelay::relay {

// The settings that differ between `running` (the configuration the daemon started with) and
// `next` (the file just read) and take effect only after a restart: "[queue] path", "[dns]
// forwarders, trust_anchor_file and root_hints", "[metrics]", "[server] user and group", in that
// order; empty when there are none.
std::vector<std::string> RestartNeeded(const config::Config& running, const config::Config& next);

}  // namespace danerelay::relay
