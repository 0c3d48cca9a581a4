#pragma once
// danerelay passwd USER: sets an SMTP AUTH password in the users file ([auth] users_file).
#include <iosfwd>
#include <string>

#include "config/config.hpp"

namespace danerelay::tools {

// Reads one line (the password) from `in`, without echo when standard input is a terminal;
// returns the exit status.
int RunPasswd(const config::Config& config, const std::string& user, std::istream& in,
              std::ostream& out, std::ostream& err);

}  // namespace danerelay::tools
