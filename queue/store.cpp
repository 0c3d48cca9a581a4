#include "queue/store.hpp"

#include "queue/store_impl.hpp"

namespace danerelay::queue {

// Schema migrations: kMigrations[i] takes user_version i to i + 1. Never edit an entry that has
// shipped; append a new one.
const char* const kMigrations[Store::kSchemaVersion] = {
    R"sql(
CREATE TABLE messages (
  id TEXT PRIMARY KEY,
  arrival_us INTEGER NOT NULL,
  sender TEXT NOT NULL,
  size INTEGER NOT NULL,
  client_address TEXT NOT NULL,
  client_helo TEXT NOT NULL,
  protocol TEXT NOT NULL,
  body_8bitmime INTEGER NOT NULL,
  smtputf8 INTEGER NOT NULL,
  dsn_ret TEXT NOT NULL,
  dsn_envid TEXT NOT NULL,
  content BLOB NOT NULL,
  completed_us INTEGER  -- when every recipient reached a final state; NULL while pending
) WITHOUT ROWID;
CREATE TABLE recipients (
  message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  address TEXT NOT NULL,
  state TEXT NOT NULL,
  notify INTEGER NOT NULL,
  orcpt TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_us INTEGER,
  last_status TEXT NOT NULL DEFAULT '',
  last_reply TEXT NOT NULL DEFAULT '',
  last_remote TEXT NOT NULL DEFAULT '',  -- the MX host of the last attempt
  last_attempt_us INTEGER,
  delay_warned INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (message_id, idx)
) WITHOUT ROWID;
CREATE INDEX recipients_due ON recipients(state, next_attempt_us);
CREATE INDEX messages_arrival ON messages(arrival_us);
CREATE TABLE attempts (
  id INTEGER PRIMARY KEY,
  message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  recipient_idx INTEGER NOT NULL,
  time_us INTEGER NOT NULL,
  mx_host TEXT NOT NULL,
  ip TEXT NOT NULL,
  dnssec_mx TEXT NOT NULL,
  dnssec_address TEXT NOT NULL,
  dnssec_tlsa TEXT NOT NULL,
  tls_verdict TEXT NOT NULL,
  tlsa_record TEXT NOT NULL,
  reply TEXT NOT NULL,
  status TEXT NOT NULL
);
CREATE INDEX attempts_message ON attempts(message_id, recipient_idx);
)sql",
};

constexpr const char* kMessageColumns =
    "id, arrival_us, sender, size, client_address, client_helo, protocol, body_8bitmime, "
    "smtputf8, dsn_ret, dsn_envid";
const std::string kRecipientQuery =
    fmt::format("SELECT {} FROM recipients WHERE message_id = ?1 ORDER BY idx", kRecipientColumns);

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

std::filesystem::path Store::DatabasePath(const StoreOptions& options) {
  return options.path / "queue.db";
}

tl::expected<std::unique_ptr<Store>, StoreError> Store::Open(const StoreOptions& options,
                                                             OpenMode mode) {
  auto impl = std::make_unique<Impl>();
  impl->path = DatabasePath(options);
  int flags = SQLITE_OPEN_NOMUTEX;
  if (mode == OpenMode::kReadWrite) {
    std::error_code ec;
    std::filesystem::create_directories(options.path, ec);
    if (ec) {
      return tl::unexpected(StoreError{fmt::format("cannot create queue directory {}: {}",
                                                   options.path.string(), ec.message())});
    }
    flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  } else {
    if (!std::filesystem::exists(impl->path)) {
      return tl::unexpected(StoreError{
          fmt::format("{}: no queue database here (has danerelayd run with this configuration?)",
                      impl->path.string())});
    }
    flags |= SQLITE_OPEN_READONLY;
  }
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(impl->path.c_str(), &raw, flags, nullptr);
  impl->db.reset(raw);
  if (rc != SQLITE_OK) return tl::unexpected(impl->Err("open"));
  // The daemon's writer may hold the write lock for a group commit; readers and a second
  // writer wait for it rather than fail.
  sqlite3_busy_timeout(impl->db.get(), 5000);

  if (mode == OpenMode::kReadWrite) {
    // WAL lets the command line read while the daemon writes; synchronous=FULL makes every
    // commit durable before it returns (design.md), which is what lets us answer 250.
    auto r =
        impl->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
    if (!r) return tl::unexpected(r.error());
    if (auto m = impl->Migrate(); !m) return tl::unexpected(m.error());
  } else {
    auto version = impl->UserVersion();
    if (!version) return tl::unexpected(version.error());
    if (*version > kSchemaVersion || *version == 0) {
      return tl::unexpected(
          StoreError{fmt::format("{}: schema version {}, this build reads version {}",
                                 impl->path.string(), *version, kSchemaVersion)});
    }
    impl->schema_version = *version;
  }
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

int Store::schema_version() const { return impl_->schema_version; }

tl::expected<void, StoreError> Store::Impl::InsertMessage(const NewMessage& m) {
  if (!insert_message) {
    auto a = Prepare(
        "INSERT INTO messages (id, arrival_us, sender, size, client_address, client_helo, "
        "protocol, body_8bitmime, smtputf8, dsn_ret, dsn_envid, content) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
    auto b = Prepare(
        "INSERT INTO recipients (message_id, idx, address, state, notify, orcpt, "
        "next_attempt_us) VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6)");
    if (!a) return tl::unexpected(a.error());
    if (!b) return tl::unexpected(b.error());
    insert_message = std::move(*a);
    insert_recipient = std::move(*b);
  }
  auto text = [](sqlite3_stmt* s, int col, std::string_view v) {
    sqlite3_bind_text(s, col, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  };
  sqlite3_stmt* ms = insert_message.get();
  sqlite3_stmt* rs = insert_recipient.get();
  sqlite3_reset(ms);
  text(ms, 1, m.id);
  sqlite3_bind_int64(ms, 2, ToMicros(m.arrival));
  text(ms, 3, m.sender);
  sqlite3_bind_int64(ms, 4, static_cast<sqlite3_int64>(m.content.size()));
  text(ms, 5, m.client_address);
  text(ms, 6, m.client_helo);
  text(ms, 7, m.protocol);
  sqlite3_bind_int(ms, 8, m.body_8bitmime ? 1 : 0);
  sqlite3_bind_int(ms, 9, m.smtputf8 ? 1 : 0);
  text(ms, 10, ToString(m.dsn_ret));
  text(ms, 11, m.dsn_envid);
  sqlite3_bind_blob64(ms, 12, m.content.data(), m.content.size(), SQLITE_STATIC);
  const int rc = sqlite3_step(ms);
  sqlite3_reset(ms);
  if (rc != SQLITE_DONE) return tl::unexpected(Err("insert message " + m.id));
  for (size_t r = 0; r < m.recipients.size(); ++r) {
    const NewRecipient& rcpt = m.recipients[r];
    sqlite3_reset(rs);
    text(rs, 1, m.id);
    sqlite3_bind_int(rs, 2, static_cast<int>(r));
    text(rs, 3, rcpt.address);
    sqlite3_bind_int(rs, 4, static_cast<int>(rcpt.notify));
    text(rs, 5, rcpt.orcpt);
    sqlite3_bind_int64(rs, 6, ToMicros(m.arrival));
    const int rrc = sqlite3_step(rs);
    sqlite3_reset(rs);
    if (rrc != SQLITE_DONE) return tl::unexpected(Err("insert recipient of " + m.id));
  }
  return {};
}

std::vector<tl::expected<void, StoreError>> Store::InsertBatch(
    std::span<const NewMessage* const> batch) {
  std::vector<tl::expected<void, StoreError>> results(batch.size());
  auto fail_all = [&](const StoreError& e) {
    for (auto& r : results) r = tl::unexpected(e);
    return results;
  };
  if (auto r = impl_->Exec("BEGIN IMMEDIATE"); !r) return fail_all(r.error());
  for (size_t i = 0; i < batch.size(); ++i) {
    // A savepoint per message: one bad message must not cost the others their commit.
    if (auto r = impl_->Exec("SAVEPOINT msg"); !r) {
      results[i] = tl::unexpected(r.error());
      continue;
    }
    results[i] = impl_->InsertMessage(*batch[i]);
    if (!results[i]) (void)impl_->Exec("ROLLBACK TO msg");
    (void)impl_->Exec("RELEASE msg");
  }
  if (auto r = impl_->Exec("COMMIT"); !r) {
    (void)impl_->Exec("ROLLBACK");
    return fail_all(r.error());
  }
  return results;
}

tl::expected<std::vector<MessageInfo>, StoreError> Store::ListMessages(bool include_completed) {
  // One read transaction, so the list is a consistent snapshot while the daemon writes.
  if (auto r = impl_->Exec("BEGIN"); !r) return tl::unexpected(r.error());
  auto s = impl_->Prepare(fmt::format("SELECT {} FROM messages {} ORDER BY id", kMessageColumns,
                                      include_completed ? "" : "WHERE completed_us IS NULL")
                              .c_str());
  auto rs = impl_->Prepare(kRecipientQuery.c_str());
  if (!s || !rs) {
    (void)impl_->Exec("ROLLBACK");
    return tl::unexpected(!s ? s.error() : rs.error());
  }
  std::vector<MessageInfo> out;
  int rc;
  while ((rc = sqlite3_step(s->get())) == SQLITE_ROW) {
    out.push_back(Impl::ReadMessageRow(s->get()));
    out.back().recipients = impl_->LoadRecipients(rs->get(), out.back().id);
  }
  const bool ok = rc == SQLITE_DONE;
  auto err = ok ? StoreError{} : impl_->Err("list messages");
  (void)impl_->Exec("COMMIT");
  if (!ok) return tl::unexpected(err);
  return out;
}

tl::expected<std::optional<MessageInfo>, StoreError> Store::GetMessage(std::string_view id) {
  if (auto r = impl_->Exec("BEGIN"); !r) return tl::unexpected(r.error());
  auto s =
      impl_->Prepare(fmt::format("SELECT {} FROM messages WHERE id = ?1", kMessageColumns).c_str());
  auto rs = impl_->Prepare(kRecipientQuery.c_str());
  if (!s || !rs) {
    (void)impl_->Exec("ROLLBACK");
    return tl::unexpected(!s ? s.error() : rs.error());
  }
  sqlite3_bind_text(s->get(), 1, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
  std::optional<MessageInfo> out;
  if (sqlite3_step(s->get()) == SQLITE_ROW) {
    out = Impl::ReadMessageRow(s->get());
    out->recipients = impl_->LoadRecipients(rs->get(), out->id);
  }
  (void)impl_->Exec("COMMIT");
  return out;
}

tl::expected<std::optional<std::string>, StoreError> Store::GetContent(std::string_view id) {
  auto s = impl_->Prepare("SELECT content FROM messages WHERE id = ?1");
  if (!s) return tl::unexpected(s.error());
  sqlite3_bind_text(s->get(), 1, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
  const int rc = sqlite3_step(s->get());
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  if (rc != SQLITE_ROW) return tl::unexpected(impl_->Err("read content"));
  const auto* data = static_cast<const char*>(sqlite3_column_blob(s->get(), 0));
  const auto size = static_cast<size_t>(sqlite3_column_bytes(s->get(), 0));
  return std::optional<std::string>(std::string(data ? data : "", size));
}

}  // namespace danerelay::queue
