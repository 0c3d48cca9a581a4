#pragma once
// One daemon per queue: an exclusive flock(2) on "danerelayd.lock" in the queue directory, held
// for the daemon's life and released by the kernel when the process ends, however it ends. The
// file holds the PID of the holder, so that a second daemon can say which one is in the way.
// The command line never takes it: it works beside the running daemon.
#include <sys/types.h>

#include <filesystem>
#include <string>

#include <tl/expected.hpp>

namespace danerelay::queue {

class QueueLock {
 public:
  // Locks `directory` (which must exist) or says why not: "... in use by danerelayd PID 1234".
  static tl::expected<QueueLock, std::string> Acquire(const std::filesystem::path& directory);
  // The PID recorded by the holder, 0 when the file is missing or says nothing.
  static pid_t HolderPid(const std::filesystem::path& directory);
  static std::filesystem::path FilePath(const std::filesystem::path& directory);

  QueueLock(QueueLock&& other) noexcept;
  QueueLock& operator=(QueueLock&&) = delete;
  QueueLock(const QueueLock&) = delete;
  ~QueueLock();

  int fd() const { return fd_; }

 private:
  explicit QueueLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace danerelay::queue
