// Suspensions and the sending quotas' counters (schema 16): small tables the daemon reads
// whole, kept in the queue so that they survive a restart.
#include "queue/store_impl.hpp"

namespace danerelay::queue {
namespace {

void BindText(sqlite3_stmt* s, int i, std::string_view v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

}  // namespace

tl::expected<void, StoreError> Store::Suspend(const Suspension& s) {
  return impl_->Write([&]() -> tl::expected<void, StoreError> {
    // The operator's word replaces what is there; the daemon's only lengthens it.
    auto q = impl_->Prepare(
        s.origin == "operator"
            ? "INSERT OR REPLACE INTO suspensions (kind, name, until_us, reason, user, "
              "created_us, origin) VALUES (?1, lower(?2), ?3, ?4, ?5, ?6, ?7)"
            : "INSERT INTO suspensions (kind, name, until_us, reason, user, created_us, origin) "
              "VALUES (?1, lower(?2), ?3, ?4, ?5, ?6, ?7) ON CONFLICT (kind, name) DO UPDATE "
              "SET until_us = excluded.until_us, reason = excluded.reason, user = excluded.user, "
              "created_us = excluded.created_us, origin = excluded.origin "
              "WHERE excluded.until_us > suspensions.until_us");
    if (!q) return tl::unexpected(q.error());
    BindText(q->get(), 1, s.kind);
    BindText(q->get(), 2, s.name);
    sqlite3_bind_int64(q->get(), 3, ToMicros(s.until));
    BindText(q->get(), 4, s.reason);
    BindText(q->get(), 5, s.user);
    sqlite3_bind_int64(q->get(), 6, ToMicros(s.created));
    BindText(q->get(), 7, s.origin);
    if (auto r = impl_->StepDone(q->get(), "suspend"); !r) return r;
    // Those ended by now go: nothing looks at them, and the daemon reads the table every tick.
    auto ended = impl_->Prepare("DELETE FROM suspensions WHERE until_us <= ?1");
    if (!ended) return tl::unexpected(ended.error());
    sqlite3_bind_int64(ended->get(), 1, ToMicros(s.created));
    return impl_->StepDone(ended->get(), "suspend: drop the ended");
  });
}

tl::expected<std::optional<TimePoint>, StoreError> Store::Park(std::string_view message_id,
                                                               const std::vector<int>& indices,
                                                               TimePoint now,
                                                               std::optional<TimePoint> not_before,
                                                               std::string_view site) {
  using Result = tl::expected<std::optional<TimePoint>, StoreError>;
  return impl_->Write([&]() -> Result {
    // ?5: the site found now, else the one the recipient had (SET sees the old row).
    auto q = impl_->Prepare(
        "UPDATE recipients SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END, "
        "site = CASE WHEN ?5 <> '' THEN lower(?5) ELSE site END, "
        "next_attempt_us = MAX(COALESCE((SELECT until_us FROM suspensions WHERE kind = 'domain' "
        "AND name = recipients.domain AND until_us > ?3), ?4), COALESCE((SELECT until_us FROM "
        "suspensions WHERE kind = 'site' AND name = CASE WHEN ?5 <> '' THEN lower(?5) ELSE "
        "recipients.site END AND name <> '' AND until_us > ?3), ?4), ?4) "
        "WHERE message_id = ?1 AND idx = ?2 AND state = 'attempting' RETURNING next_attempt_us");
    if (!q) return tl::unexpected(q.error());
    std::optional<TimePoint> earliest;
    for (int index : indices) {
      sqlite3_reset(q->get());
      BindText(q->get(), 1, message_id);
      sqlite3_bind_int(q->get(), 2, index);
      sqlite3_bind_int64(q->get(), 3, ToMicros(now));
      sqlite3_bind_int64(q->get(), 4, ToMicros(not_before.value_or(now)));
      BindText(q->get(), 5, site);
      auto r = impl_->EachRow(q->get(), "park", [&](sqlite3_stmt* st) {
        const TimePoint t = FromMicros(sqlite3_column_int64(st, 0));
        if (!earliest || t < *earliest) earliest = t;
      });
      if (!r) return tl::unexpected(r.error());
    }
    return earliest;
  });
}

tl::expected<int, StoreError> Store::WakeParked(std::string_view message_id,
                                                const std::vector<int>& indices, TimePoint until,
                                                TimePoint now) {
  return impl_->Write([&]() -> tl::expected<int, StoreError> {
    auto q = impl_->Prepare(
        "UPDATE recipients SET next_attempt_us = ?4 WHERE message_id = ?1 AND idx = ?2 AND "
        "state IN ('queued', 'deferred') AND next_attempt_us = ?3");
    if (!q) return tl::unexpected(q.error());
    int woken = 0;
    for (int index : indices) {
      sqlite3_reset(q->get());
      BindText(q->get(), 1, message_id);
      sqlite3_bind_int(q->get(), 2, index);
      sqlite3_bind_int64(q->get(), 3, ToMicros(until));
      sqlite3_bind_int64(q->get(), 4, ToMicros(now));
      if (auto r = impl_->StepDone(q->get(), "wake parked"); !r) return tl::unexpected(r.error());
      woken += sqlite3_changes(impl_->db.get());
    }
    return woken;
  });
}

tl::expected<bool, StoreError> Store::Resume(std::string_view kind, std::string_view name,
                                             TimePoint now, std::string_view origin) {
  return impl_->Write([&]() -> tl::expected<bool, StoreError> {
    auto get = impl_->Prepare(
        "SELECT until_us FROM suspensions WHERE kind = ?1 AND name = lower(?2) AND "
        "(?3 = '' OR origin = ?3)");
    if (!get) return tl::unexpected(get.error());
    BindText(get->get(), 1, kind);
    BindText(get->get(), 2, name);
    BindText(get->get(), 3, std::string(origin));  // "" (not NULL) for a default view
    const int rc = sqlite3_step(get->get());
    if (rc == SQLITE_DONE) return false;
    if (rc != SQLITE_ROW) return tl::unexpected(impl_->Err("read suspension"));
    const std::int64_t until = sqlite3_column_int64(get->get(), 0);
    auto del = impl_->Prepare("DELETE FROM suspensions WHERE kind = ?1 AND name = lower(?2)");
    if (!del) return tl::unexpected(del.error());
    BindText(del->get(), 1, kind);
    BindText(del->get(), 2, name);
    if (auto r = impl_->StepDone(del->get(), "resume"); !r) return tl::unexpected(r.error());
    // Parked mail has exactly the suspension's end as its next attempt (ClaimDue); mail
    // deferred by its own backoff keeps its time. SQLite picks recipients_due(state,
    // next_attempt_us = the end): what it parked, and little else (EXPLAIN QUERY PLAN).
    const char* wake_sql = nullptr;
    if (kind == "domain") {
      wake_sql =
          "UPDATE recipients SET next_attempt_us = ?1 WHERE domain = lower(?2) AND "
          "state IN ('queued', 'deferred') AND next_attempt_us = ?3";
    } else if (kind == "site") {
      wake_sql =
          "UPDATE recipients SET next_attempt_us = ?1 WHERE site = lower(?2) AND "
          "state IN ('queued', 'deferred') AND next_attempt_us = ?3";
    } else {
      return true;
    }
    auto wake = impl_->Prepare(wake_sql);
    if (!wake) return tl::unexpected(wake.error());
    sqlite3_bind_int64(wake->get(), 1, ToMicros(now));
    BindText(wake->get(), 2, name);
    sqlite3_bind_int64(wake->get(), 3, until);
    if (auto r = impl_->StepDone(wake->get(), "resume: wake"); !r) return tl::unexpected(r.error());
    return true;
  });
}

tl::expected<std::vector<Store::Suspension>, StoreError> Store::ListSuspensions(TimePoint now) {
  using Out = std::vector<Suspension>;
  return impl_->Read<Out>([&]() -> tl::expected<Out, StoreError> {
    auto q = impl_->Prepare(
        "SELECT kind, name, until_us, reason, user, created_us, origin FROM suspensions "
        "WHERE until_us > ?1 ORDER BY kind, name");
    if (!q) return tl::unexpected(q.error());
    sqlite3_bind_int64(q->get(), 1, ToMicros(now));
    Out out;
    auto r = impl_->EachRow(q->get(), "suspensions", [&](sqlite3_stmt* st) {
      out.push_back({ColumnText(st, 0), ColumnText(st, 1), FromMicros(sqlite3_column_int64(st, 2)),
                     ColumnText(st, 3), ColumnText(st, 4), FromMicros(sqlite3_column_int64(st, 5)),
                     ColumnText(st, 6)});
    });
    if (!r) return tl::unexpected(r.error());
    return out;
  });
}

tl::expected<std::vector<Store::QuotaUsage>, StoreError> Store::LoadQuotaUsage() {
  using Out = std::vector<QuotaUsage>;
  return impl_->Read<Out>([&]() -> tl::expected<Out, StoreError> {
    auto q = impl_->Prepare("SELECT key, window_start_us, count FROM quota_usage");
    if (!q) return tl::unexpected(q.error());
    Out out;
    auto r = impl_->EachRow(q->get(), "quota usage", [&](sqlite3_stmt* st) {
      out.push_back({ColumnText(st, 0), FromMicros(sqlite3_column_int64(st, 1)),
                     sqlite3_column_int64(st, 2)});
    });
    if (!r) return tl::unexpected(r.error());
    return out;
  });
}

tl::expected<void, StoreError> Store::PutQuotaUsage(const std::vector<QuotaUsage>& rows,
                                                    TimePoint drop_before) {
  return impl_->Write([&]() -> tl::expected<void, StoreError> {
    auto put = impl_->Prepare(
        "INSERT OR REPLACE INTO quota_usage (key, window_start_us, count) VALUES (?1, ?2, ?3)");
    if (!put) return tl::unexpected(put.error());
    for (const auto& u : rows) {
      sqlite3_reset(put->get());
      BindText(put->get(), 1, u.key);
      sqlite3_bind_int64(put->get(), 2, ToMicros(u.window_start));
      sqlite3_bind_int64(put->get(), 3, u.count);
      if (auto r = impl_->StepDone(put->get(), "quota usage"); !r) return r;
    }
    auto drop = impl_->Prepare("DELETE FROM quota_usage WHERE window_start_us < ?1");
    if (!drop) return tl::unexpected(drop.error());
    sqlite3_bind_int64(drop->get(), 1, ToMicros(drop_before));
    return impl_->StepDone(drop->get(), "quota usage: drop old");
  });
}

}  // namespace danerelay::queue
