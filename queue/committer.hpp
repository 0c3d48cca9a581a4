#pragma once
// Group commit: one writer thread owns the read-write Store and turns every burst of concurrent
// Submit() and Write() calls into a single transaction, so N sessions and M delivery outcomes
// cost one fsync, not N + M.
//
// No artificial delay is added: while one commit is being synced, new submissions pile up and
// become the next batch. The callback runs on the writer thread after the commit that holds the
// message has returned (or failed); the caller re-posts it to its own executor.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "queue/store.hpp"

namespace danerelay::queue {

class Committer {
 public:
  using Callback = std::function<void(tl::expected<void, StoreError>)>;

  explicit Committer(std::unique_ptr<Store> store, size_t max_batch = 256);
  // Commits everything already submitted, then stops the writer.
  ~Committer();
  Committer(const Committer&) = delete;
  Committer& operator=(const Committer&) = delete;

  void Submit(NewMessage message, Callback done);

  // Runs `job` inside the next group commit; `done` gets its result once that commit has
  // returned (an error when the job or the commit failed). The job may run more than once
  // (Store::CommitBatch): it assigns its outputs. How outcomes and claims are written.
  void Write(Store::WriteJob job, Callback done);

  // Runs `job` on the writer thread with the store, outside any batch: reads, and the
  // operator-style writes that open their own transaction. This is how the rest of the daemon
  // reaches the queue: one connection, one thread.
  void Post(std::function<void(Store&)> job);

  struct Stats {
    std::uint64_t messages = 0;      // messages committed
    std::uint64_t writes = 0;        // write jobs committed
    std::uint64_t transactions = 0;  // commits, i.e. WAL syncs
  };
  Stats stats() const;

 private:
  struct Pending {
    NewMessage message;
    Callback done;
  };
  struct PendingWrite {
    Store::WriteJob job;
    Callback done;
  };
  void Run();

  std::unique_ptr<Store> store_;
  const size_t max_batch_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> pending_;
  std::deque<PendingWrite> writes_;
  std::deque<std::function<void(Store&)>> jobs_;
  bool stopping_ = false;
  Stats stats_;
  std::thread writer_;  // last: started after every other member exists
};

}  // namespace danerelay::queue
