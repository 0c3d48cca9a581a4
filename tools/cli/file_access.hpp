#pragma once
// `danerelay config check`: whether [server] user can read every file the daemon reads again on
// reload (by then it has given root up). Checked by a child process that becomes that account
// as danerelayd does (setgroups to its one group, setgid, setuid) and opens each file.
#include <string>
#include <vector>

#include "config/config.hpp"

namespace danerelay::tools {

struct AccessCheck {
  std::vector<std::string> problems;  // one per file the account cannot read
  std::string note;                   // why nothing was checked, when nothing was
};

// Nothing to check without [server] user. Needs root, or to be that account; else a note.
AccessCheck CheckReadableByAccount(const config::Config& config);

}  // namespace danerelay::tools
