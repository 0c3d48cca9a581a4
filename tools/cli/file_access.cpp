#include "tools/cli/file_access.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

namespace danerelay::tools {
namespace {

std::string Lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// Runs Unreadable() in a child that has become uid/gid; the parent gets its lines. Forked, so
// that this process keeps root for nothing else and no credential is changed here.
tl::expected<std::vector<std::string>, std::string> UnreadableAs(
    uid_t uid, gid_t gid, const std::vector<config::FileRead>& files) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return tl::unexpected(std::string("pipe: ") + std::strerror(errno));
  const pid_t pid = ::fork();
  if (pid < 0) {
    const std::string why = std::strerror(errno);
    ::close(fds[0]);
    ::close(fds[1]);
    return tl::unexpected("fork: " + why);
  }
  if (pid == 0) {
    ::close(fds[0]);
    if (::setgroups(1, &gid) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) {
      const std::string why = std::strerror(errno);
      [[maybe_unused]] auto n = ::write(fds[1], why.data(), why.size());
      ::_exit(1);
    }
    const std::string text = Lines(config::Unreadable(files));
    for (size_t done = 0; done < text.size();) {
      const ssize_t n = ::write(fds[1], text.data() + done, text.size() - done);
      if (n <= 0) ::_exit(1);
      done += static_cast<size_t>(n);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return tl::unexpected("cannot become that account: " + (text.empty() ? "failed" : text));
  }
  std::vector<std::string> lines;
  for (size_t pos = 0; pos < text.size();) {
    const size_t nl = text.find('\n', pos);
    lines.push_back(text.substr(pos, nl - pos));
    pos = nl == std::string::npos ? text.size() : nl + 1;
  }
  return lines;
}

}  // namespace

AccessCheck CheckReadableByAccount(const config::Config& config) {
  AccessCheck check;
  const auto& server = config.server;
  if (server.user.empty()) return check;
  const passwd* pw = ::getpwnam(server.user.c_str());
  if (!pw) {
    check.problems.push_back(fmt::format("[server] user: no such user '{}'", server.user));
    return check;
  }
  const uid_t uid = pw->pw_uid;
  gid_t gid = pw->pw_gid;
  if (!server.group.empty()) {
    const group* gr = ::getgrnam(server.group.c_str());
    if (!gr) {
      check.problems.push_back(fmt::format("[server] group: no such group '{}'", server.group));
      return check;
    }
    gid = gr->gr_gid;
  }
  const auto files = config::FilesReadOnReload(config);
  tl::expected<std::vector<std::string>, std::string> found;
  if (::geteuid() == uid && ::getegid() == gid) {
    found = config::Unreadable(files);
  } else if (::geteuid() == 0) {
    found = UnreadableAs(uid, gid, files);
  } else {
    check.note = fmt::format(
        "not checked whether [server] user = \"{}\" can read the files a reload reads (run "
        "as root or as that user)",
        server.user);
    return check;
  }
  if (!found) {
    check.problems.push_back(fmt::format("[server] user {}: {}", server.user, found.error()));
    return check;
  }
  for (const auto& p : *found) {
    // The daemon reads these after it gave root up: as this account, on every reload.
    check.problems.push_back(fmt::format("as [server] user {}: {}", server.user, p));
  }
  return check;
}

}  // namespace danerelay::tools
