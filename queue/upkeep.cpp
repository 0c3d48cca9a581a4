#include "queue/upkeep.hpp"

#include "queue/retry.hpp"

namespace danerelay::queue {

UpkeepResult RunUpkeep(Store& store, const UpkeepRequest& request) {
  UpkeepResult out;
  auto note = [&](const StoreError& e) {
    if (!out.error) out.error = e;
  };
  auto changed = store.ChangedElsewhere();
  if (!changed) note(changed.error());
  out.changed_elsewhere = changed && *changed;
  // Every tick, not only when data_version moved: entries written while the daemon was down
  // are logged at its start. An empty table costs one read.
  auto taken = store.TakeOperatorLog();
  if (!taken) note(taken.error());
  if (taken) out.operator_log = std::move(*taken);
  // Every tick too: a suspension's end is logged and counted when it passes.
  auto suspended = store.ListSuspensions(request.now);
  if (!suspended) note(suspended.error());
  if (suspended) out.suspensions = std::move(*suspended);

  // max_lifetime holds for every state: held, queued and deferred recipients are returned to
  // the sender too. A message with a recipient in delivery is left to that attempt, which
  // expires the rest with it (SchedulePass), so that one moment makes one bounce.
  auto oldest = request.expire ? store.OldestPending()
                               : tl::expected<std::optional<TimePoint>, StoreError>(std::nullopt);
  if (!oldest) note(oldest.error());
  RetryOptions lifetime;
  lifetime.max_lifetime = request.max_lifetime;
  if (oldest && *oldest && Expired(**oldest, request.now, lifetime)) {
    Store::Selection old;
    // Strictly before: the microsecond makes it agree with Expired(), for which the lifetime's
    // end is already past it.
    old.arrived_before = request.now - request.max_lifetime + std::chrono::microseconds(1);
    old.skip_in_flight = true;
    const TimePoint now = request.now;
    auto expired = store.Finish(old, RecipientState::kExpired, "", "", Cause::kNone, now,
                                [&](const MessageInfo& m, const std::string& content,
                                    const std::vector<StoredRecipient>& finished) {
                                  return ComposeBounce(m, content, finished, request.ids->Next(now),
                                                       now, request.notice);
                                });
    if (!expired) note(expired.error());
    if (expired) out.expired = std::move(*expired);
  }

  // The operator's reserve for a full disk, given back by `queue delete` or `queue bounce`:
  // made again as soon as there is room (a stat while it is there).
  if (request.expire) out.reserve_made = store.KeepReserve();

  if (request.purge_before) {
    auto purged = store.PurgeCompleted(*request.purge_before, UpkeepRequest::kPurgeBatch);
    if (!purged) note(purged.error());
    if (purged) out.purged = *purged;
    // With the purge: a surplus of free pages (a drained backlog) goes back to the file
    // system, a bounded step each time (store_space.cpp).
    auto returned = store.ReturnFreeSpace(UpkeepRequest::kReturnPages);
    if (!returned) note(returned.error());
    if (returned) out.returned = *returned;
  }
  if (out.changed_elsewhere || out.expired.recipients > 0) {
    auto next = store.NextDue();
    if (!next) note(next.error());
    out.reread = next.has_value();
    if (next) out.next_due = *next;
  }
  return out;
}

}  // namespace danerelay::queue
