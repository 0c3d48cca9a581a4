#pragma once
// danerelay queue flush|hold|release|delete|bounce|stats|compact: the operator's controls. They
// write the queue database directly, so they work with the daemon stopped; a running daemon sees
// the change at its next look at the queue (at most a second later). compact only runs with
// the daemon stopped.
#include <ostream>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "queue/store.hpp"

namespace danerelay::tools {

enum class AdminAction { kFlush, kHold, kRelease, kDelete, kBounce };

struct AdminRequest {
  AdminAction action = AdminAction::kFlush;
  queue::Store::Selection selection;
  bool all = false;  // required when nothing is selected, so that a typo cannot empty the queue
  bool json = false;
};

// Who runs the command, for the daemon's log ("root", "root (alice via sudo)").
std::string OperatorName();
// Exit status: 0 done (also when nothing matched), 1 bad selection, 2 queue error.
int RunAdmin(const config::Config& config, const AdminRequest& request, std::ostream& out,
             std::ostream& err);
int RunStats(const config::Config& config, bool json, std::ostream& out, std::ostream& err);
// VACUUM into incremental auto-vacuum mode, with the queue lock held (so never beside a running
// daemon, which it would stall). Exit status: 0 done, 2 the daemon runs or a queue error.
int RunCompact(const config::Config& config, std::ostream& out, std::ostream& err);
// A consistent copy of the queue into the new file `file`, beside a running daemon or not.
// Exit status: 0 done, 2 a queue error or `file` exists.
int RunBackup(const config::Config& config, const std::string& file, std::ostream& out,
              std::ostream& err);

}  // namespace danerelay::tools
