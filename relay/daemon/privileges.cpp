#include "relay/daemon/privileges.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>

#include "queue/queue_lock.hpp"
#include "queue/store.hpp"

namespace danerelay::relay {
namespace {

std::string Errno() { return std::strerror(errno); }

// chmod/chown of one path the daemon owns; `mode` is what it must have at most.
tl::expected<void, std::string> Tighten(const std::filesystem::path& path, mode_t mode,
                                        const std::optional<Identity>& owner) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return tl::unexpected(fmt::format("{}: {}", path.string(), Errno()));
  }
  if (S_ISLNK(st.st_mode)) {
    return tl::unexpected(fmt::format("{}: is a symbolic link; refusing to use it", path.string()));
  }
  if ((st.st_mode & 07777) != mode) {
    if (chmod(path.c_str(), mode) != 0) {
      return tl::unexpected(fmt::format("chmod {:o} {}: {}", mode, path.string(), Errno()));
    }
    spdlog::info("{}: mode {:04o} -> {:04o}", path.string(), st.st_mode & 07777, mode);
  }
  if (geteuid() == 0 && owner && (st.st_uid != owner->uid || st.st_gid != owner->gid)) {
    if (chown(path.c_str(), owner->uid, owner->gid) != 0) {
      return tl::unexpected(fmt::format("chown {} {}: {}", owner->user, path.string(), Errno()));
    }
  }
  return {};
}

}  // namespace

tl::expected<std::optional<Identity>, std::string> ResolveIdentity(const ServerOptions& options) {
  if (options.user.empty()) return std::nullopt;
  errno = 0;
  const passwd* pw = getpwnam(options.user.c_str());
  if (!pw) return tl::unexpected(fmt::format("[server] user: no such user '{}'", options.user));
  Identity who{options.user, pw->pw_uid, pw->pw_gid};
  if (!options.group.empty()) {
    const group* gr = getgrnam(options.group.c_str());
    if (!gr)
      return tl::unexpected(fmt::format("[server] group: no such group '{}'", options.group));
    who.gid = gr->gr_gid;
  }
  if (who.uid == 0) {
    return tl::unexpected(
        fmt::format("[server] user: '{}' is root; name an unprivileged account", options.user));
  }
  if (geteuid() != 0 && geteuid() != who.uid) {
    return tl::unexpected(fmt::format(
        "[server] user = \"{}\": started as uid {}, which is neither root nor that user",
        options.user, geteuid()));
  }
  return who;
}

tl::expected<void, std::string> SecureQueueDirectory(const std::filesystem::path& directory,
                                                     const std::optional<Identity>& owner) {
  std::error_code ec;
  std::filesystem::create_directories(directory, ec);
  if (ec) {
    return tl::unexpected(
        fmt::format("cannot create queue directory {}: {}", directory.string(), ec.message()));
  }
  if (auto r = Tighten(directory, 0700, owner); !r) return r;
  queue::StoreOptions where;
  where.path = directory;
  const auto db = queue::Store::DatabasePath(where);
  for (const auto& file :
       {db, std::filesystem::path(db.string() + "-wal"),
        std::filesystem::path(db.string() + "-shm"), queue::QueueLock::FilePath(directory)}) {
    if (auto r = Tighten(file, 0600, owner); !r) return r;
  }
  return {};
}

tl::expected<void, std::string> DropPrivileges(const Identity& who) {
  if (setgroups(1, &who.gid) != 0) return tl::unexpected("setgroups: " + Errno());
  if (setgid(who.gid) != 0) return tl::unexpected("setgid: " + Errno());
  if (setuid(who.uid) != 0) return tl::unexpected("setuid: " + Errno());
  if (setuid(0) == 0 || geteuid() == 0 || getuid() == 0) {
    return tl::unexpected(std::string("root privileges could be regained after setuid"));
  }
  return {};
}

std::uint64_t RaiseFileLimit(std::uint64_t wanted) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
  if (lim.rlim_cur < wanted) {
    rlimit raised = lim;
    raised.rlim_cur =
        lim.rlim_max == RLIM_INFINITY ? wanted : std::min<rlim_t>(wanted, lim.rlim_max);
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  return lim.rlim_cur;
}

}  // namespace danerelay::relay
