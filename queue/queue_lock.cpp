#include "queue/queue_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace danerelay::queue {

std::filesystem::path QueueLock::FilePath(const std::filesystem::path& directory) {
  return directory / "danerelayd.lock";
}

pid_t QueueLock::HolderPid(const std::filesystem::path& directory) {
  const int fd = open(FilePath(directory).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[32] = {};
  const ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  long pid = 0;
  for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) {
    pid = pid * 10 + (buf[i] - '0');
    if (pid > 1L << 30) return 0;
  }
  return static_cast<pid_t>(pid);
}

tl::expected<QueueLock, std::string> QueueLock::Acquire(const std::filesystem::path& directory) {
  const auto path = FilePath(directory);
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return tl::unexpected(fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
  }
  QueueLock lock(fd);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err != EWOULDBLOCK) {
      return tl::unexpected(fmt::format("cannot lock {}: {}", path.string(), std::strerror(err)));
    }
    const pid_t holder = HolderPid(directory);
    return tl::unexpected(fmt::format(
        "the queue in {} is in use by another danerelayd{}; stop it first, or give this one its "
        "own [queue] path",
        directory.string(), holder > 0 ? fmt::format(" (PID {})", holder) : std::string()));
  }
  const std::string pid = fmt::format("{}\n", getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) != ssize_t(pid.size())) {
    return tl::unexpected(fmt::format("cannot write {}: {}", path.string(), std::strerror(errno)));
  }
  return lock;
}

QueueLock::QueueLock(QueueLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

QueueLock::~QueueLock() {
  if (fd_ >= 0) close(fd_);
}

}  // namespace danerelay::queue
