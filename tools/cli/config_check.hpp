#pragma once
// danerelay config check [FILE]: loads a configuration the way the daemon does at start (and on
// reload) and names every problem: the file's own, then certificates, trust store, trust
// anchor, AUTH accounts, and files the daemon's account could not read.
#include <ostream>
#include <string>

namespace danerelay::tools {

// Exit status: 0 the configuration is usable, 78 it is not (each problem said on `err`).
int RunConfigCheck(const std::string& path, std::ostream& out, std::ostream& err);

}  // namespace danerelay::tools
