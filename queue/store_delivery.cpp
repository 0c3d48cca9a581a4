// The delivery side of the store: claiming due recipients, recording attempts and outcomes.
// Every query here is an index lookup bounded by what it returns (relay/DESIGN.md: the cost per
// message must not grow with the queue).
#include <map>
#include <set>

#include "queue/store_impl.hpp"

namespace danerelay::queue {
namespace {

// Must match the WHERE clause of the partial index recipients_next word for word, or SQLite
// cannot use it. And the queries name it (INDEXED BY): left to itself the planner prefers
// recipients_due(state, next_attempt_us) and sorts every due row to return the first few,
// which made each claim cost as much as the backlog (EXPLAIN QUERY PLAN).
constexpr const char* kDue = "state IN ('queued', 'deferred')";

// Due recipients of a suspended domain or site are parked instead of claimed
// (store_suspend.cpp): their next attempt becomes the suspension's end (the later one when both
// are suspended), with no attempt and no state change, so they wait without being deferred and
// wake when it ends. The statement for one message (?2) at ?1, a primary-key lookup in
// suspensions per due recipient and kind in force; a null statement when no suspension is in
// force, so that an empty table costs one scan of it per claim and nothing per message.
tl::expected<StmtPtr, StoreError> ParkSuspended(Store::Impl& impl, std::int64_t now_us) {
  auto kinds = impl.Prepare("SELECT DISTINCT kind FROM suspensions WHERE until_us > ?1");
  if (!kinds) return tl::unexpected(kinds.error());
  sqlite3_bind_int64(kinds->get(), 1, now_us);
  // Per kind in force: the end of the recipient's suspension of that kind (NULL: none).
  std::vector<std::string> until;
  auto r = impl.EachRow(kinds->get(), "claim: suspensions", [&](sqlite3_stmt* s) {
    const std::string kind = ColumnText(s, 0);
    if (kind == "domain") {
      until.push_back(
          "(SELECT until_us FROM suspensions WHERE kind = 'domain' AND name = recipients.domain "
          "AND until_us > ?1)");
    } else if (kind == "site") {  // '': not yet known (no attempt or park found it yet)
      until.push_back(
          "(SELECT until_us FROM suspensions WHERE kind = 'site' AND name = recipients.site "
          "AND recipients.site <> '' AND until_us > ?1)");
    }
  });
  if (!r) return tl::unexpected(r.error());
  if (until.empty()) return StmtPtr();
  std::string value = until[0], any = until[0] + " IS NOT NULL";
  if (until.size() == 2) {
    value = fmt::format("MAX(COALESCE({}, 0), COALESCE({}, 0))", until[0], until[1]);
    any = fmt::format("({} IS NOT NULL OR {} IS NOT NULL)", until[0], until[1]);
  }
  return impl.Prepare(fmt::format("UPDATE recipients SET next_attempt_us = {} WHERE message_id "
                                  "= ?2 AND {} AND next_attempt_us <= ?1 AND {}",
                                  value, kDue, any)
                          .c_str());
}

}  // namespace

tl::expected<std::vector<MessageInfo>, StoreError> Store::ClaimDue(TimePoint now, size_t limit) {
  using Result = tl::expected<std::vector<MessageInfo>, StoreError>;
  return impl_->Write([&]() -> Result {
    // Due recipients in due order through the partial index, at most a few per message asked
    // for: a message with many due recipients fills its share, and the scan never grows with
    // the backlog.
    auto rows = impl_->Prepare(
        fmt::format("SELECT message_id FROM recipients INDEXED BY recipients_next WHERE {} AND "
                    "next_attempt_us <= ?1 ORDER BY next_attempt_us LIMIT ?2",
                    kDue)
            .c_str());
    auto msg = impl_->Prepare(
        fmt::format("SELECT {} FROM messages WHERE id = ?1", kMessageColumns).c_str());
    auto rcpts = impl_->Prepare(fmt::format("SELECT {} FROM recipients WHERE message_id = ?2 AND "
                                            "{} AND next_attempt_us <= ?1 ORDER BY idx",
                                            kRecipientColumns, kDue)
                                    .c_str());
    auto claim = impl_->Prepare(
        fmt::format("UPDATE recipients SET state = 'attempting' WHERE message_id = ?2 AND {} AND "
                    "next_attempt_us <= ?1",
                    kDue)
            .c_str());
    if (!rows) return tl::unexpected(rows.error());
    if (!msg) return tl::unexpected(msg.error());
    if (!rcpts) return tl::unexpected(rcpts.error());
    if (!claim) return tl::unexpected(claim.error());
    const std::int64_t now_us = ToMicros(now);
    auto park = ParkSuspended(*impl_, now_us);
    if (!park) return tl::unexpected(park.error());
    sqlite3_bind_int64(rows->get(), 1, now_us);
    sqlite3_bind_int64(rows->get(), 2, static_cast<sqlite3_int64>(limit * 4));
    std::vector<std::string> due_ids;
    std::set<std::string> seen;
    auto scanned = impl_->EachRow(rows->get(), "due recipients", [&](sqlite3_stmt* s) {
      std::string id = ColumnText(s, 0);
      if (due_ids.size() < limit && seen.insert(id).second) due_ids.push_back(std::move(id));
    });
    if (!scanned) return tl::unexpected(scanned.error());

    std::vector<MessageInfo> out;
    for (const auto& id : due_ids) {
      sqlite3_reset(msg->get());
      sqlite3_bind_text(msg->get(), 1, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
      const int rc = sqlite3_step(msg->get());
      if (rc != SQLITE_ROW) return tl::unexpected(impl_->Err("claim: read message " + id));
      MessageInfo m = Impl::ReadMessageRow(msg->get());
      for (sqlite3_stmt* s : {park->get(), rcpts->get(), claim->get()}) {
        if (!s) continue;  // nothing to park
        sqlite3_reset(s);
        sqlite3_bind_int64(s, 1, now_us);
        sqlite3_bind_text(s, 2, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
      }
      if (*park) {
        if (auto r = impl_->StepDone(park->get(), "claim: park"); !r) {
          return tl::unexpected(r.error());
        }
      }
      auto read = impl_->EachRow(rcpts->get(), "claim: read recipients", [&](sqlite3_stmt* s) {
        m.recipients.push_back(Impl::ReadRecipientRow(s));
        m.recipients.back().state = RecipientState::kAttempting;
      });
      if (!read) return tl::unexpected(read.error());
      if (auto r = impl_->StepDone(claim->get(), "claim"); !r) return tl::unexpected(r.error());
      if (!m.recipients.empty()) out.push_back(std::move(m));
    }
    return out;
  });
}

tl::expected<int, StoreError> Store::ReleaseAttempting(TimePoint now) {
  return impl_->Write([&]() -> tl::expected<int, StoreError> {
    auto s = impl_->Prepare(
        "UPDATE recipients SET state = 'deferred', next_attempt_us = ?1 "
        "WHERE state = 'attempting'");
    if (!s) return tl::unexpected(s.error());
    sqlite3_bind_int64(s->get(), 1, ToMicros(now));
    if (auto r = impl_->StepDone(s->get(), "release"); !r) return tl::unexpected(r.error());
    return sqlite3_changes(impl_->db.get());
  });
}

tl::expected<int, StoreError> Store::MakeDeferredDue(Cause cause, TimePoint now) {
  return impl_->Write([&]() -> tl::expected<int, StoreError> {
    auto s = impl_->Prepare(
        "UPDATE recipients SET next_attempt_us = ?1 WHERE state = 'deferred' AND "
        "next_attempt_us > ?1 AND last_cause = ?2");
    if (!s) return tl::unexpected(s.error());
    sqlite3_bind_int64(s->get(), 1, ToMicros(now));
    const std::string_view token = Token(cause);
    sqlite3_bind_text(s->get(), 2, token.data(), static_cast<int>(token.size()), SQLITE_TRANSIENT);
    if (auto r = impl_->StepDone(s->get(), "make due"); !r) return tl::unexpected(r.error());
    return sqlite3_changes(impl_->db.get());
  });
}

namespace {

// The first column of the first row of `sql` as a time, nullopt when there is no row or NULL.
tl::expected<std::optional<TimePoint>, StoreError> FirstTime(Store::Impl& impl, const char* sql,
                                                             std::string_view what) {
  auto s = impl.Prepare(sql);
  if (!s) return tl::unexpected(s.error());
  const int rc = sqlite3_step(s->get());
  if (rc == SQLITE_DONE) return std::optional<TimePoint>();
  if (rc != SQLITE_ROW) return tl::unexpected(impl.Err(what));
  if (sqlite3_column_type(s->get(), 0) == SQLITE_NULL) return std::optional<TimePoint>();
  return std::optional<TimePoint>(FromMicros(sqlite3_column_int64(s->get(), 0)));
}

}  // namespace

tl::expected<std::optional<TimePoint>, StoreError> Store::NextDue() {
  static const std::string sql = fmt::format(
      "SELECT next_attempt_us FROM recipients INDEXED BY recipients_next WHERE {} AND "
      "next_attempt_us IS NOT NULL ORDER BY next_attempt_us LIMIT 1",
      kDue);
  return FirstTime(*impl_, sql.c_str(), "next due");
}

tl::expected<std::optional<TimePoint>, StoreError> Store::OldestPending() {
  return FirstTime(*impl_,
                   "SELECT arrival_us FROM messages WHERE completed_us IS NULL "
                   "ORDER BY arrival_us LIMIT 1",
                   "oldest pending");
}

tl::expected<bool, StoreError> Store::ChangedElsewhere() {
  auto s = impl_->Prepare("PRAGMA data_version");
  if (!s) return tl::unexpected(s.error());
  if (sqlite3_step(s->get()) != SQLITE_ROW) return tl::unexpected(impl_->Err("data_version"));
  const std::int64_t version = sqlite3_column_int64(s->get(), 0);
  const bool changed = impl_->data_version != 0 && version != impl_->data_version;
  impl_->data_version = version;
  return changed;
}

void BindAttempt(sqlite3_stmt* s, int first, const AttemptRecord& a) {
  sqlite3_bind_int64(s, first, ToMicros(a.time));
  const std::string_view fields[] = {a.mx_host,     a.ip,          a.dnssec_mx,   a.dnssec_address,
                                     a.dnssec_tlsa, a.tls_verdict, a.tlsa_record, a.reply,
                                     a.status,      a.note,        a.mta_sts,     a.result_type,
                                     a.sending_ip};
  int col = first + 1;
  for (const auto& f : fields) {
    sqlite3_bind_text(s, col++, f.data(), static_cast<int>(f.size()), SQLITE_TRANSIENT);
  }
  sqlite3_bind_int64(s, col++, a.session);
  std::string tlsa;  // one record a line
  for (const auto& r : a.tlsa_policy) tlsa += (tlsa.empty() ? "" : "\n") + r;
  const std::string_view typed[] = {a.policy_type, tlsa, a.sts_policy_id, a.sts_problem, a.site};
  for (const auto& f : typed) {
    sqlite3_bind_text(s, col++, f.data(), static_cast<int>(f.size()), SQLITE_TRANSIENT);
  }
}

AttemptRecord ReadAttempt(sqlite3_stmt* s, int first) {
  AttemptRecord a;
  a.time = FromMicros(sqlite3_column_int64(s, first));
  std::string* fields[] = {&a.mx_host,     &a.ip,          &a.dnssec_mx,   &a.dnssec_address,
                           &a.dnssec_tlsa, &a.tls_verdict, &a.tlsa_record, &a.reply,
                           &a.status,      &a.note,        &a.mta_sts,     &a.result_type,
                           &a.sending_ip};
  int col = first + 1;
  for (std::string* f : fields) *f = ColumnText(s, col++);
  a.session = sqlite3_column_int64(s, col++);
  a.policy_type = ColumnText(s, col++);
  const std::string tlsa = ColumnText(s, col++);
  for (std::string_view rest = tlsa; !rest.empty();) {
    const auto nl = rest.find('\n');
    a.tlsa_policy.emplace_back(rest.substr(0, nl));
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  }
  a.sts_policy_id = ColumnText(s, col++);
  a.sts_problem = ColumnText(s, col++);
  a.site = ColumnText(s, col++);
  return a;
}

tl::expected<void, StoreError> Store::RecordDelivery(std::string_view message_id,
                                                     const std::vector<RecipientUpdate>& updates,
                                                     const std::vector<AttemptRecord>& attempts,
                                                     const std::vector<NewMessage>& notices,
                                                     TimePoint now, bool* completed) {
  return impl_->Write([&]() -> tl::expected<void, StoreError> {
    // An update that was not an attempt (a recipient expired with the rest of its message)
    // keeps its attempt count and time.
    auto upd = impl_->Prepare(
        "UPDATE recipients SET state = ?3, next_attempt_us = ?4, last_status = ?5, "
        "last_reply = ?6, last_remote = ?7, last_reply_remote = ?11, last_cause = ?12, "
        "last_attempt_us = CASE WHEN ?10 THEN ?8 ELSE last_attempt_us END, "
        "delay_warned = MAX(delay_warned, ?9), attempts = attempts + ?10 "
        "WHERE message_id = ?1 AND idx = ?2");
    static const std::string kInsertAttempt = [] {
      std::string values = "?1, ?2";
      for (int i = 0; i < kAttemptColumnCount; ++i) values += fmt::format(", ?{}", 3 + i);
      return fmt::format("INSERT INTO attempts (message_id, recipient_idx, {}) VALUES ({})",
                         kAttemptColumns, values);
    }();
    auto ins = impl_->Prepare(kInsertAttempt.c_str());
    auto done = impl_->Prepare(
        "UPDATE messages SET completed_us = ?2 WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM "
        "recipients WHERE message_id = ?1 AND state NOT IN ('delivered', 'failed', 'expired'))");
    if (!upd) return tl::unexpected(upd.error());
    if (!ins) return tl::unexpected(ins.error());
    if (!done) return tl::unexpected(done.error());
    auto text = [](sqlite3_stmt* s, int col, std::string_view v) {
      sqlite3_bind_text(s, col, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    };
    for (const auto& u : updates) {
      sqlite3_stmt* s = upd->get();
      sqlite3_reset(s);
      text(s, 1, message_id);
      sqlite3_bind_int(s, 2, u.index);
      text(s, 3, ToString(u.state));
      if (u.next_attempt) {
        sqlite3_bind_int64(s, 4, ToMicros(*u.next_attempt));
      } else {
        sqlite3_bind_null(s, 4);
      }
      text(s, 5, u.status);
      text(s, 6, u.reply);
      text(s, 7, u.remote);
      sqlite3_bind_int64(s, 8, ToMicros(now));
      sqlite3_bind_int(s, 9, u.delay_warned ? 1 : 0);
      sqlite3_bind_int(s, 10, u.attempted ? 1 : 0);
      sqlite3_bind_int(s, 11, u.reply_is_remote ? 1 : 0);
      text(s, 12, Token(u.cause));
      if (auto r = impl_->StepDone(s, "update recipient"); !r) return r;
    }
    // Each recipient that still waits has the site of its last attempt here that knew one (an
    // attempt whose MX lookup failed knows none, and leaves the site it had); a finished one
    // needs none (queue show takes it from the attempts), which spares a write per delivery.
    std::set<int> finished;
    for (const auto& u : updates) {
      if (u.state != RecipientState::kQueued && u.state != RecipientState::kDeferred) {
        finished.insert(u.index);
      }
    }
    std::map<int, std::string_view> sites;
    for (const auto& a : attempts) {
      sqlite3_stmt* s = ins->get();
      sqlite3_reset(s);
      text(s, 1, message_id);
      sqlite3_bind_int(s, 2, a.recipient_index);
      BindAttempt(s, 3, a);
      if (auto r = impl_->StepDone(s, "insert attempt"); !r) return r;
      if (!a.site.empty() && !finished.contains(a.recipient_index)) {
        sites[a.recipient_index] = a.site;
      }
    }
    if (!sites.empty()) {
      auto site = impl_->Prepare(
          "UPDATE recipients SET site = lower(?3) WHERE message_id = ?1 AND idx = ?2 AND "
          "site <> lower(?3)");
      if (!site) return tl::unexpected(site.error());
      for (const auto& [index, name] : sites) {
        sqlite3_reset(site->get());
        text(site->get(), 1, message_id);
        sqlite3_bind_int(site->get(), 2, index);
        text(site->get(), 3, name);
        if (auto r = impl_->StepDone(site->get(), "recipient site"); !r) return r;
      }
    }
    for (const auto& notice : notices) {
      if (auto r = impl_->InsertMessage(notice); !r) return r;
    }
    text(done->get(), 1, message_id);
    sqlite3_bind_int64(done->get(), 2, ToMicros(now));
    auto r = impl_->StepDone(done->get(), "complete");
    // Every recipient is final: the message leaves the queue (kept for `keep_completed`).
    if (r && completed) *completed = sqlite3_changes(impl_->db.get()) == 1;
    return r;
  });
}

tl::expected<std::optional<std::vector<int>>, StoreError> Store::AttemptingRecipients(
    std::string_view message_id) {
  using Result = tl::expected<std::optional<std::vector<int>>, StoreError>;
  return impl_->Read<std::optional<std::vector<int>>>([&]() -> Result {
    // Through the primary key: the message's own recipients, whatever the queue holds.
    auto s = impl_->Prepare(
        "SELECT idx, state = 'attempting' FROM recipients WHERE message_id = ?1 ORDER BY idx");
    if (!s) return tl::unexpected(s.error());
    sqlite3_bind_text(s->get(), 1, message_id.data(), static_cast<int>(message_id.size()),
                      SQLITE_TRANSIENT);
    bool any = false;
    std::vector<int> out;
    auto r = impl_->EachRow(s->get(), "attempting recipients", [&](sqlite3_stmt* st) {
      any = true;
      if (sqlite3_column_int(st, 1) != 0) out.push_back(sqlite3_column_int(st, 0));
    });
    if (!r) return tl::unexpected(r.error());
    if (!any) return std::optional<std::vector<int>>();  // no recipients: no message
    return std::optional<std::vector<int>>(std::move(out));
  });
}

tl::expected<std::vector<AttemptRecord>, StoreError> Store::GetAttempts(
    std::string_view message_id) {
  static const std::string kSelect = fmt::format(
      "SELECT recipient_idx, {} FROM attempts WHERE message_id = ?1 ORDER BY id", kAttemptColumns);
  auto s = impl_->Prepare(kSelect.c_str());
  if (!s) return tl::unexpected(s.error());
  sqlite3_bind_text(s->get(), 1, message_id.data(), static_cast<int>(message_id.size()),
                    SQLITE_TRANSIENT);
  std::vector<AttemptRecord> out;
  auto r = impl_->EachRow(s->get(), "read attempts", [&](sqlite3_stmt* st) {
    AttemptRecord a = ReadAttempt(st, 1);
    a.recipient_index = sqlite3_column_int(st, 0);
    out.push_back(std::move(a));
  });
  if (!r) return tl::unexpected(r.error());
  return out;
}

tl::expected<int, StoreError> Store::PurgeCompleted(TimePoint before, int limit) {
  // Through the messages_completed index, a bounded number at a time: a large purge does not
  // hold the write lock (and every waiting 250) for long.
  return impl_->Write([&]() -> tl::expected<int, StoreError> {
    auto s = impl_->Prepare(
        "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE completed_us IS NOT "
        "NULL AND completed_us < ?1 ORDER BY completed_us LIMIT ?2)");
    if (!s) return tl::unexpected(s.error());
    sqlite3_bind_int64(s->get(), 1, ToMicros(before));
    sqlite3_bind_int(s->get(), 2, limit);
    if (auto r = impl_->StepDone(s->get(), "purge"); !r) return tl::unexpected(r.error());
    return sqlite3_changes(impl_->db.get());
  });
}

}  // namespace danerelay::queue
