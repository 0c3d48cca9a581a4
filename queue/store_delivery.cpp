// The delivery side of the store: claiming due recipients, recording attempts and outcomes.
#include "queue/store_impl.hpp"

namespace danerelay::queue {
namespace {

constexpr const char* kDue = "state IN ('queued', 'deferred') AND next_attempt_us <= ?1";

}  // namespace

tl::expected<std::vector<MessageInfo>, StoreError> Store::ClaimDue(TimePoint now, size_t limit) {
  if (auto r = impl_->Exec("BEGIN IMMEDIATE"); !r) return tl::unexpected(r.error());
  auto fail = [&](StoreError e) -> tl::expected<std::vector<MessageInfo>, StoreError> {
    (void)impl_->Exec("ROLLBACK");
    return tl::unexpected(std::move(e));
  };
  auto ids =
      impl_->Prepare(fmt::format("SELECT message_id FROM recipients WHERE {} GROUP BY message_id "
                                 "ORDER BY MIN(next_attempt_us), message_id LIMIT ?2",
                                 kDue)
                         .c_str());
  auto msg = impl_->Prepare(
      "SELECT id, arrival_us, sender, size, client_address, client_helo, protocol, "
      "body_8bitmime, smtputf8, dsn_ret, dsn_envid FROM messages WHERE id = ?1");
  auto rcpts = impl_->Prepare(
      fmt::format("SELECT {} FROM recipients WHERE message_id = ?2 AND {} ORDER BY idx",
                  kRecipientColumns, kDue)
          .c_str());
  auto claim = impl_->Prepare(
      fmt::format("UPDATE recipients SET state = 'attempting' WHERE message_id = ?2 AND {}", kDue)
          .c_str());
  if (!ids || !msg || !rcpts || !claim) return fail(impl_->Err("prepare claim"));
  const std::int64_t now_us = ToMicros(now);
  sqlite3_bind_int64(ids->get(), 1, now_us);
  sqlite3_bind_int64(ids->get(), 2, static_cast<sqlite3_int64>(limit));
  std::vector<std::string> due_ids;
  while (sqlite3_step(ids->get()) == SQLITE_ROW) due_ids.push_back(ColumnText(ids->get(), 0));

  std::vector<MessageInfo> out;
  for (const auto& id : due_ids) {
    sqlite3_reset(msg->get());
    sqlite3_bind_text(msg->get(), 1, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(msg->get()) != SQLITE_ROW) continue;
    MessageInfo m = Impl::ReadMessageRow(msg->get());
    for (sqlite3_stmt* s : {rcpts->get(), claim->get()}) {
      sqlite3_reset(s);
      sqlite3_bind_int64(s, 1, now_us);
      sqlite3_bind_text(s, 2, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
    }
    while (sqlite3_step(rcpts->get()) == SQLITE_ROW) {
      m.recipients.push_back(Impl::ReadRecipientRow(rcpts->get()));
      m.recipients.back().state = RecipientState::kAttempting;
    }
    if (sqlite3_step(claim->get()) != SQLITE_DONE) return fail(impl_->Err("claim"));
    out.push_back(std::move(m));
  }
  if (auto r = impl_->Exec("COMMIT"); !r) return fail(r.error());
  return out;
}

tl::expected<int, StoreError> Store::ReleaseAttempting(TimePoint now) {
  auto s = impl_->Prepare(
      "UPDATE recipients SET state = 'deferred', next_attempt_us = ?1 "
      "WHERE state = 'attempting'");
  if (!s) return tl::unexpected(s.error());
  sqlite3_bind_int64(s->get(), 1, ToMicros(now));
  if (sqlite3_step(s->get()) != SQLITE_DONE) return tl::unexpected(impl_->Err("release"));
  return sqlite3_changes(impl_->db.get());
}

tl::expected<std::optional<TimePoint>, StoreError> Store::NextDue() {
  auto s = impl_->Prepare(
      "SELECT MIN(next_attempt_us) FROM recipients WHERE state IN ('queued', 'deferred')");
  if (!s) return tl::unexpected(s.error());
  if (sqlite3_step(s->get()) != SQLITE_ROW) return tl::unexpected(impl_->Err("next due"));
  if (sqlite3_column_type(s->get(), 0) == SQLITE_NULL) return std::optional<TimePoint>();
  return std::optional<TimePoint>(FromMicros(sqlite3_column_int64(s->get(), 0)));
}

tl::expected<void, StoreError> Store::RecordDelivery(std::string_view message_id,
                                                     const std::vector<RecipientUpdate>& updates,
                                                     const std::vector<AttemptRecord>& attempts,
                                                     const std::vector<NewMessage>& notices,
                                                     TimePoint now) {
  if (auto r = impl_->Exec("BEGIN IMMEDIATE"); !r) return r;
  auto fail = [&](StoreError e) -> tl::expected<void, StoreError> {
    (void)impl_->Exec("ROLLBACK");
    return tl::unexpected(std::move(e));
  };
  auto upd = impl_->Prepare(
      "UPDATE recipients SET state = ?3, next_attempt_us = ?4, last_status = ?5, "
      "last_reply = ?6, last_remote = ?7, last_attempt_us = ?8, "
      "delay_warned = MAX(delay_warned, ?9), attempts = attempts + 1 "
      "WHERE message_id = ?1 AND idx = ?2");
  auto ins = impl_->Prepare(
      "INSERT INTO attempts (message_id, recipient_idx, time_us, mx_host, ip, dnssec_mx, "
      "dnssec_address, dnssec_tlsa, tls_verdict, tlsa_record, reply, status) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
  auto done = impl_->Prepare(
      "UPDATE messages SET completed_us = ?2 WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM "
      "recipients WHERE message_id = ?1 AND state NOT IN ('delivered', 'failed', 'expired'))");
  if (!upd || !ins || !done) return fail(impl_->Err("prepare record"));
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
    if (sqlite3_step(s) != SQLITE_DONE) return fail(impl_->Err("update recipient"));
  }
  for (const auto& a : attempts) {
    sqlite3_stmt* s = ins->get();
    sqlite3_reset(s);
    text(s, 1, message_id);
    sqlite3_bind_int(s, 2, a.recipient_index);
    sqlite3_bind_int64(s, 3, ToMicros(a.time));
    const std::string_view fields[] = {a.mx_host,        a.ip,          a.dnssec_mx,
                                       a.dnssec_address, a.dnssec_tlsa, a.tls_verdict,
                                       a.tlsa_record,    a.reply,       a.status};
    for (int i = 0; i < 9; ++i) text(s, 4 + i, fields[i]);
    if (sqlite3_step(s) != SQLITE_DONE) return fail(impl_->Err("insert attempt"));
  }
  for (const auto& notice : notices) {
    if (auto r = impl_->InsertMessage(notice); !r) return fail(r.error());
  }
  sqlite3_reset(done->get());
  text(done->get(), 1, message_id);
  sqlite3_bind_int64(done->get(), 2, ToMicros(now));
  if (sqlite3_step(done->get()) != SQLITE_DONE) return fail(impl_->Err("complete"));
  if (auto r = impl_->Exec("COMMIT"); !r) return fail(r.error());
  return {};
}

tl::expected<std::vector<AttemptRecord>, StoreError> Store::GetAttempts(
    std::string_view message_id) {
  auto s = impl_->Prepare(
      "SELECT recipient_idx, time_us, mx_host, ip, dnssec_mx, dnssec_address, dnssec_tlsa, "
      "tls_verdict, tlsa_record, reply, status FROM attempts WHERE message_id = ?1 ORDER BY id");
  if (!s) return tl::unexpected(s.error());
  sqlite3_bind_text(s->get(), 1, message_id.data(), static_cast<int>(message_id.size()),
                    SQLITE_TRANSIENT);
  std::vector<AttemptRecord> out;
  while (sqlite3_step(s->get()) == SQLITE_ROW) {
    AttemptRecord a;
    a.recipient_index = sqlite3_column_int(s->get(), 0);
    a.time = FromMicros(sqlite3_column_int64(s->get(), 1));
    std::string* fields[] = {&a.mx_host,        &a.ip,          &a.dnssec_mx,
                             &a.dnssec_address, &a.dnssec_tlsa, &a.tls_verdict,
                             &a.tlsa_record,    &a.reply,       &a.status};
    for (int i = 0; i < 9; ++i) *fields[i] = ColumnText(s->get(), 2 + i);
    out.push_back(std::move(a));
  }
  return out;
}

tl::expected<int, StoreError> Store::PurgeCompleted(TimePoint before) {
  auto s =
      impl_->Prepare("DELETE FROM messages WHERE completed_us IS NOT NULL AND completed_us < ?1");
  if (!s) return tl::unexpected(s.error());
  sqlite3_bind_int64(s->get(), 1, ToMicros(before));
  if (sqlite3_step(s->get()) != SQLITE_DONE) return tl::unexpected(impl_->Err("purge"));
  return sqlite3_changes(impl_->db.get());
}

}  // namespace danerelay::queue
