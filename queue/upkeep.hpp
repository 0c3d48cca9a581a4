#pragma once
// The queue's housekeeping, run on the writer thread once per scheduler tick: notice the command
// line's changes (and take its operator log), expire mail that nobody is attempting, purge
// completed mail and give a surplus of free pages back to the file system. Each step is an index
// lookup unless it finds work, so an idle daemon with a million queued recipients stays idle
// (relay/DESIGN.md).
#include <chrono>
#include <cstdint>
#include <optional>

#include "queue/notice.hpp"
#include "queue/queue_id.hpp"
#include "queue/store.hpp"

namespace danerelay::queue {

struct UpkeepRequest {
  TimePoint now;  // as judged for expiry (relay's ExpiryClock), not necessarily the wall clock
  std::chrono::seconds max_lifetime{5 * 24 * 3600};
  bool expire = true;                       // false: only notice the command line's changes
  std::optional<TimePoint> purge_before;    // set: purge completed mail older than this,
  static constexpr int kPurgeBatch = 1000;  // at most this many messages per call
  static constexpr std::int64_t kReturnPages = 8192;  // free pages given back per call, at most
  NoticeOptions notice;
  QueueIdGenerator* ids = nullptr;  // names the bounces
};

struct UpkeepResult {
  bool changed_elsewhere = false;  // the command line wrote: re-read what is due
  bool reread = false;             // next_due was read (the command line wrote, or expiry)
  std::optional<TimePoint> next_due;
  Store::Touched expired;  // messages returned to their senders (with .finished: the notices)
  std::vector<Store::OperatorEntry> operator_log;  // the command line's changes, to be logged
  std::vector<Store::Suspension> suspensions;      // every row of the table (a small read)
  int purged = 0;
  Store::Returned returned;         // free pages given back to the file system
  bool reserve_made = false;        // the operator's reserve (Store::KeepReserve) was made again
  std::optional<StoreError> error;  // the first step that failed (the others still ran)
};

UpkeepResult RunUpkeep(Store& store, const UpkeepRequest& request);

}  // namespace danerelay::queue
