#include "tools/cli/passwd.hpp"

#include <termios.h>
#include <unistd.h>

#include <istream>
#include <ostream>

#include "relay/inbound/accounts.hpp"

namespace danerelay::tools {
namespace {

// Turns terminal echo off for its lifetime, when standard input is a terminal.
class NoEcho {
 public:
  NoEcho() {
    if (::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &saved_) == 0) {
      termios quiet = saved_;
      quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      active_ = ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
    }
  }
  ~NoEcho() {
    if (active_) ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_);
  }
  NoEcho(const NoEcho&) = delete;
  NoEcho& operator=(const NoEcho&) = delete;
  bool active() const { return active_; }

 private:
  termios saved_{};
  bool active_ = false;
};

}  // namespace

int RunPasswd(const config::Config& config, const std::string& user, std::istream& in,
              std::ostream& out, std::ostream& err) {
  const auto& file = config.server.auth.users_file;
  if (file.empty()) {
    err << "danerelay passwd: " << config.source
        << ": [auth] users_file is not set; set it to say where the accounts live\n";
    return 78;  // EX_CONFIG, as danerelay(8) says
  }
  if (!relay::ValidUserName(user)) {
    err << "danerelay passwd: '" << user << "' is not a user name (printable, no spaces or ':')\n";
    return 64;  // EX_USAGE: a malformed argument
  }
  std::string password;
  {
    NoEcho no_echo;
    if (no_echo.active()) out << "Password for " << user << ": " << std::flush;
    std::getline(in, password);
    if (no_echo.active()) out << "\n";
  }
  if (!password.empty() && password.back() == '\r') password.pop_back();
  if (password.empty()) {
    err << "danerelay passwd: no password given (one line on standard input)\n";
    return 64;  // EX_USAGE
  }
  auto hash = relay::HashPassword(password);
  if (!hash) {
    err << "danerelay passwd: " << hash.error() << "\n";
    return 2;
  }
  if (auto r = relay::SetPassword(file, user, *hash); !r) {
    err << "danerelay passwd: " << r.error() << "\n";
    return 2;
  }
  out << "danerelay passwd: " << user << " set in " << file.string()
      << " (a running danerelayd reads it again on SIGHUP)\n";
  return 0;
}

}  // namespace danerelay::tools
