#include "queue/store.hpp"

#include "queue/store_impl.hpp"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

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
    // 2: the cost per message must not depend on the size of the queue (relay/DESIGN.md). Content
    // moves to its own table, so no scan and no update of a message row reads or rewrites it;
    // recipients carry their domain; every periodic query has an index bounded by its result.
    R"sql(
CREATE TABLE contents (
  message_id TEXT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
  data BLOB NOT NULL
);
INSERT INTO contents (message_id, data) SELECT id, content FROM messages;
ALTER TABLE messages DROP COLUMN content;
ALTER TABLE recipients ADD COLUMN domain TEXT NOT NULL DEFAULT '';
UPDATE recipients SET domain = lower(substr(address, instr(address, '@') + 1))
  WHERE instr(address, '@') > 0;
-- Claiming: the due recipients in due order, nothing else.
CREATE INDEX recipients_next ON recipients(next_attempt_us)
  WHERE state IN ('queued', 'deferred');
CREATE INDEX recipients_domain ON recipients(domain, state);
-- Expiry and the oldest message: pending messages by arrival; purge: completed by completion.
CREATE INDEX messages_pending ON messages(arrival_us) WHERE completed_us IS NULL;
CREATE INDEX messages_completed ON messages(completed_us) WHERE completed_us IS NOT NULL;
DROP INDEX messages_arrival;
)sql",
    // 3: the SMTP AUTH user that submitted a message.
    R"sql(
ALTER TABLE messages ADD COLUMN auth_user TEXT NOT NULL DEFAULT '';
)sql",
    // 4: a note on an attempt (DANE testing mode: what mandatory DANE would have done).
    R"sql(
ALTER TABLE attempts ADD COLUMN note TEXT NOT NULL DEFAULT '';
)sql",
    // 5: MTA-STS: the policy cache, and the policy an attempt was made under; REQUIRETLS.
    R"sql(
CREATE TABLE sts_policies (
  domain TEXT PRIMARY KEY,
  id TEXT NOT NULL,
  policy TEXT NOT NULL,
  fetched_us INTEGER NOT NULL
) WITHOUT ROWID;
ALTER TABLE attempts ADD COLUMN mta_sts TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN requiretls INTEGER NOT NULL DEFAULT 0;
)sql",
    // 6: TLS-RPT: the daily reports made, one per policy domain and day, so none goes out twice.
    R"sql(
CREATE TABLE tls_reports (
  domain TEXT NOT NULL,
  day_us INTEGER NOT NULL,
  report_id TEXT NOT NULL,
  made_us INTEGER NOT NULL,
  rua TEXT NOT NULL,
  outcome TEXT NOT NULL,
  PRIMARY KEY (domain, day_us)
) WITHOUT ROWID;
)sql",
    // 7: TLS-RPT: the https: POSTs of each report, with the report until it was taken or given
    // up, so that a failed POST is tried again later and across a restart. The attempts by
    // time: the daily run finds a day's domains without scanning every attempt kept.
    R"sql(
CREATE INDEX attempts_time ON attempts (time_us);
CREATE TABLE tls_report_posts (
  domain TEXT NOT NULL,
  day_us INTEGER NOT NULL,
  url TEXT NOT NULL,
  report_id TEXT NOT NULL,
  payload BLOB,
  tries INTEGER NOT NULL,
  next_us INTEGER NOT NULL,
  state TEXT NOT NULL,
  last_error TEXT NOT NULL,
  PRIMARY KEY (domain, day_us, url)
);
CREATE INDEX tls_report_posts_due ON tls_report_posts (next_us) WHERE state = 'pending';
)sql",
    // 8: RFC 4954 §5 AUTH= of MAIL as kept for the next hop: NULL when not given, '' for <>.
    R"sql(
ALTER TABLE messages ADD COLUMN mail_auth TEXT;
)sql",
    // 9: whether last_reply is the reply of last_remote (RFC 3464 §2.3.5-6) or this relay's own
    // account. Rows from before are taken as our own: a notice names no Remote-MTA it is unsure
    // of.
    R"sql(
ALTER TABLE recipients ADD COLUMN last_reply_remote INTEGER NOT NULL DEFAULT 0;
)sql",
    // 10: the command line's changes with who made them, until the daemon has logged them.
    R"sql(
CREATE TABLE operator_log (
  id INTEGER PRIMARY KEY,
  time_us INTEGER NOT NULL,
  message_id TEXT NOT NULL,
  action TEXT NOT NULL,
  user TEXT NOT NULL,
  notice_id TEXT NOT NULL
);
)sql",
    // 11: why an attempt failed, typed (queue/failure.hpp): the RFC 8460 result type of the
    // attempt, the cause of the recipient's last failure. Rows from before have none: their
    // TLS-RPT sessions count without a result type, their notices explain by status alone.
    R"sql(
ALTER TABLE attempts ADD COLUMN result_type TEXT NOT NULL DEFAULT '';
ALTER TABLE recipients ADD COLUMN last_cause TEXT NOT NULL DEFAULT '';
)sql",
    // 12: the local address of the attempt's connection, for TLS-RPT's sending-mta-ip (RFC 8460
    // §4.4). Rows from before have none: their failure details go without it.
    R"sql(
ALTER TABLE attempts ADD COLUMN sending_ip TEXT NOT NULL DEFAULT '';
)sql",
    // 13: the SMTP session (connection) an attempt belonged to, so that TLS-RPT counts sessions
    // and not recipients (RFC 8460 §4.4). Rows from before have 0: each counts on its own.
    R"sql(
ALTER TABLE attempts ADD COLUMN session INTEGER NOT NULL DEFAULT 0;
)sql",
    // 14: the TLS-RPT policy of an attempt, typed (RFC 8460 §4.4): its type, the TLSA records
    // (one per line), the MTA-STS policy id, the result type of a failed policy fetch. Rows
    // from before get them once, here, from the texts they recorded for people (the labels
    // "no policy: <type>: ...", "<mode> id=<id>[ (cached)][, DANE applies]" and "secure: <TLSA
    // records, comma-separated>"); nothing reads those texts afterwards.
    R"sql(
ALTER TABLE attempts ADD COLUMN policy_type TEXT NOT NULL DEFAULT '';
ALTER TABLE attempts ADD COLUMN tlsa_policy TEXT NOT NULL DEFAULT '';
ALTER TABLE attempts ADD COLUMN sts_policy_id TEXT NOT NULL DEFAULT '';
ALTER TABLE attempts ADD COLUMN sts_problem TEXT NOT NULL DEFAULT '';
UPDATE attempts SET
  policy_type = CASE
    WHEN mta_sts LIKE 'no policy: %' THEN 'sts'
    WHEN mta_sts <> '' AND mta_sts NOT LIKE '%, DANE applies' THEN 'sts'
    WHEN dnssec_tlsa LIKE 'secure: %' THEN 'tlsa'
    ELSE 'no-policy-found' END,
  sts_problem = CASE WHEN mta_sts LIKE 'no policy: %'
    THEN substr(mta_sts, 12, instr(substr(mta_sts, 12), ':') - 1) ELSE '' END,
  sts_policy_id = CASE WHEN mta_sts LIKE '% id=%' AND mta_sts NOT LIKE 'no policy: %'
    THEN rtrim(substr(mta_sts, instr(mta_sts, ' id=') + 4,
                      instr(substr(mta_sts, instr(mta_sts, ' id=') + 4) || ' ', ' ') - 1), ',')
    ELSE '' END,
  tlsa_policy = CASE WHEN dnssec_tlsa LIKE 'secure: %'
    THEN replace(substr(dnssec_tlsa, 9), ', ', char(10)) ELSE '' END;
)sql",
    // 15: TLS-RPT report mails (RFC 8460 §5.3), delivered despite TLS failures and left out of
    // the reports.
    R"sql(
ALTER TABLE messages ADD COLUMN tls_report INTEGER NOT NULL DEFAULT 0;
)sql",
    // 16: the operator's suspensions (`queue suspend`; kind 'domain', later 'site') and the
    // sending quotas' counters ([quotas]), both kept across restarts.
    R"sql(
CREATE TABLE suspensions (
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  until_us INTEGER NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  user TEXT NOT NULL DEFAULT '',
  created_us INTEGER NOT NULL,
  PRIMARY KEY (kind, name)
) WITHOUT ROWID;
CREATE TABLE quota_usage (
  key TEXT PRIMARY KEY,
  window_start_us INTEGER NOT NULL,
  count INTEGER NOT NULL
) WITHOUT ROWID;
)sql",
    // 17: who decided a suspension: the operator, or the daemon on a throttling reply.
    R"sql(
ALTER TABLE suspensions ADD COLUMN origin TEXT NOT NULL DEFAULT 'operator';
)sql",
    // 18: sites (issue 26): where an attempt went ("google", the sorted MX host set, "route
    // ..."), and each recipient's site as of its last attempt or park, so that a suspension of
    // kind 'site' finds its mail, and `queue stats` counts mail by site, through the index.
    // Rows from before have '' (not yet known) until their next attempt.
    R"sql(
ALTER TABLE attempts ADD COLUMN site TEXT NOT NULL DEFAULT '';
ALTER TABLE recipients ADD COLUMN site TEXT NOT NULL DEFAULT '';
CREATE INDEX recipients_site ON recipients(site, state);
)sql",
};

const std::string kRecipientQuery =
    fmt::format("SELECT {} FROM recipients WHERE message_id = ?1 ORDER BY idx", kRecipientColumns);

bool IsTransient(const StoreError& e) {
  switch (e.code) {
    case 0:  // not SQLite's: a batch lost to another item's failure, redone next time
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_NOMEM:
    case SQLITE_READONLY:  // a file system remounted read-only, or permissions being fixed
    case SQLITE_INTERRUPT:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
    case SQLITE_SCHEMA:
      return true;
    default:  // CONSTRAINT, CORRUPT, NOTADB, MISUSE, MISMATCH, RANGE, TOOBIG, ERROR (SQL), ...
      return false;
  }
}

bool IsDiskFull(const StoreError& e) { return e.code == SQLITE_FULL; }

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

std::filesystem::path Store::DatabasePath(const StoreOptions& options) {
  return options.path / "queue.db";
}

namespace {

// The command line run by someone who may not read the queue: say whose it is, not SQL text.
StoreError NoPermission(const std::filesystem::path& path) {
  struct stat st {};
  std::string owner = "its owner";
  if (stat(path.c_str(), &st) == 0) {
    const passwd* pw = getpwuid(st.st_uid);
    owner = pw ? pw->pw_name : fmt::format("uid {}", st.st_uid);
  }
  return StoreError{fmt::format(
      "{}: permission denied; the queue belongs to {} (the account danerelayd runs as): run "
      "this as root or as {}",
      path.string(), owner, owner)};
}

}  // namespace

tl::expected<std::unique_ptr<Store>, StoreError> Store::Open(const StoreOptions& options,
                                                             OpenMode mode) {
  auto impl = std::make_unique<Impl>();
  impl->path = DatabasePath(options);
  int flags = SQLITE_OPEN_NOMUTEX;
  std::error_code ec;
  if (mode == OpenMode::kReadWrite) {
    std::filesystem::create_directories(options.path, ec);
    if (ec) {
      return tl::unexpected(StoreError{fmt::format("cannot create queue directory {}: {}",
                                                   options.path.string(), ec.message())});
    }
    flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  } else {
    if (access(options.path.c_str(), X_OK) != 0 && errno == EACCES) {
      return tl::unexpected(NoPermission(options.path));
    }
    if (!std::filesystem::exists(impl->path, ec)) {
      return tl::unexpected(StoreError{
          fmt::format("{}: no queue database here (has danerelayd run with this configuration?)",
                      impl->path.string())});
    }
    // Reading a WAL database needs its -shm file, so even inspection needs write access.
    if (access(impl->path.c_str(), R_OK | W_OK) != 0 && errno == EACCES) {
      return tl::unexpected(NoPermission(impl->path));
    }
    flags |= mode == OpenMode::kReadOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
  }
  // A queue created now gets incremental auto-vacuum (store_space.cpp); the pragma is a write
  // on an existing file, which the daemon would take for the command line's, so only then.
  const bool fresh =
      mode == OpenMode::kReadWrite && !std::filesystem::exists(impl->path, ec) && !ec;
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(impl->path.c_str(), &raw, flags, nullptr);
  impl->db.reset(raw);
  if (rc != SQLITE_OK) return tl::unexpected(impl->Err("open"));
  // The daemon's writer may hold the write lock for a group commit; readers and a second
  // writer wait for it rather than fail.
  sqlite3_busy_timeout(impl->db.get(), 5000);

  // The schema first: a queue of a newer danerelayd is left exactly as it is (not even switched
  // to WAL), and only the daemon migrates an older one.
  auto version = impl->UserVersion();
  if (!version) return tl::unexpected(version.error());
  if (*version > kSchemaVersion || (mode != OpenMode::kReadWrite && *version != kSchemaVersion)) {
    // Only the daemon migrates (it owns the queue); another schema here means a daemon of
    // another version uses it, or has not yet run.
    return tl::unexpected(StoreError{fmt::format(
        "{}: schema version {}, this build reads version {}{}", impl->path.string(), *version,
        kSchemaVersion,
        *version < kSchemaVersion ? " (start this version of danerelayd once to upgrade it)"
                                  : " (made by a newer danerelay; not changed)")});
  }
  if (mode != OpenMode::kReadOnly) {
    // WAL lets the command line read while the daemon writes; synchronous=FULL makes every
    // commit durable before it returns (relay/DESIGN.md), which is what lets us answer 250.
    // journal_size_limit: after a checkpoint the WAL is truncated to this size, so a burst of
    // large messages does not leave a WAL of gigabytes behind.
    if (fresh) {
      if (auto r = impl->Exec("PRAGMA auto_vacuum=INCREMENTAL"); !r) {
        return tl::unexpected(r.error());
      }
    }
    // temp_store=MEMORY: the operator's selections (a temporary table) need no file, so they
    // work on a full disk too.
    auto r = impl->Exec(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; "
        "PRAGMA journal_size_limit=67108864; PRAGMA temp_store=MEMORY;");
    if (!r) return tl::unexpected(r.error());
  }
  if (mode == OpenMode::kReadWrite) {
    if (auto m = impl->Migrate(); !m) return tl::unexpected(m.error());
  } else {
    impl->schema_version = *version;
  }
  auto store = std::unique_ptr<Store>(new Store(std::move(impl)));
  // The daemon's open keeps the operator's reserve; on a full disk the upkeep makes it later.
  if (mode == OpenMode::kReadWrite) store->KeepReserve();
  return store;
}

int Store::schema_version() const { return impl_->schema_version; }

tl::expected<void, StoreError> Store::Impl::InsertMessage(const NewMessage& m) {
  if (!insert_message) {
    auto a = Prepare(
        "INSERT INTO messages (id, arrival_us, sender, size, client_address, client_helo, "
        "protocol, body_8bitmime, smtputf8, dsn_ret, dsn_envid, auth_user, requiretls, "
        "mail_auth, tls_report) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
        "?14, "
        "?15)");
    auto b = Prepare(
        "INSERT INTO recipients (message_id, idx, address, state, notify, orcpt, "
        "next_attempt_us, domain) VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7)");
    auto c = Prepare("INSERT INTO contents (message_id, data) VALUES (?1, ?2)");
    if (!a) return tl::unexpected(a.error());
    if (!b) return tl::unexpected(b.error());
    if (!c) return tl::unexpected(c.error());
    insert_message = std::move(*a);
    insert_recipient = std::move(*b);
    insert_content = std::move(*c);
  }
  auto text = [](sqlite3_stmt* s, int col, std::string_view v) {
    sqlite3_bind_text(s, col, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  };
  sqlite3_stmt* ms = insert_message.get();
  sqlite3_stmt* rs = insert_recipient.get();
  sqlite3_stmt* cs = insert_content.get();
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
  text(ms, 12, m.auth_user);
  sqlite3_bind_int(ms, 13, m.requiretls ? 1 : 0);
  if (m.mail_auth) {
    text(ms, 14, *m.mail_auth);
  } else {
    sqlite3_bind_null(ms, 14);
  }
  sqlite3_bind_int(ms, 15, m.tls_report ? 1 : 0);
  const int rc = sqlite3_step(ms);
  sqlite3_reset(ms);
  if (rc != SQLITE_DONE) return tl::unexpected(Err("insert message " + m.id));
  sqlite3_reset(cs);
  text(cs, 1, m.id);
  sqlite3_bind_blob64(cs, 2, m.content.data(), m.content.size(), SQLITE_STATIC);
  const int crc = sqlite3_step(cs);
  sqlite3_reset(cs);
  if (crc != SQLITE_DONE) return tl::unexpected(Err("insert content of " + m.id));
  for (size_t r = 0; r < m.recipients.size(); ++r) {
    const NewRecipient& rcpt = m.recipients[r];
    sqlite3_reset(rs);
    text(rs, 1, m.id);
    sqlite3_bind_int(rs, 2, static_cast<int>(r));
    text(rs, 3, rcpt.address);
    sqlite3_bind_int(rs, 4, static_cast<int>(rcpt.notify));
    text(rs, 5, rcpt.orcpt);
    sqlite3_bind_int64(rs, 6, ToMicros(m.arrival));
    const std::string domain = RecipientDomain(rcpt.address);
    text(rs, 7, domain);
    const int rrc = sqlite3_step(rs);
    sqlite3_reset(rs);
    if (rrc != SQLITE_DONE) return tl::unexpected(Err("insert recipient of " + m.id));
  }
  return {};
}

std::vector<tl::expected<void, StoreError>> Store::InsertBatch(
    std::span<const NewMessage* const> batch) {
  return CommitBatch(batch, {}).messages;
}

Store::BatchResult Store::CommitBatch(std::span<const NewMessage* const> messages,
                                      std::span<const WriteJob* const> jobs) {
  // Items 0..messages-1 are messages, the rest are jobs; each runs under its own savepoint so
  // that one failure costs only itself. When SQLite rolls the whole transaction back instead
  // (SQLITE_FULL, SQLITE_IOERR, RAISE(ROLLBACK)), everything before it is gone too: the batch
  // starts over without the failed item. Running on in autocommit would commit the rest one by
  // one while their callers are told it failed, and their retries would duplicate them.
  const size_t n = messages.size() + jobs.size();
  std::vector<tl::expected<void, StoreError>> results(n);
  std::vector<bool> failed(n, false);
  auto run = [&](size_t i) -> tl::expected<void, StoreError> {
    return i < messages.size() ? impl_->InsertMessage(*messages[i])
                               : (*jobs[i - messages.size()])(*this);
  };
  auto fail_rest = [&](const StoreError& e) {
    for (size_t i = 0; i < n; ++i) {
      if (!failed[i]) results[i] = tl::unexpected(e);
    }
  };
  impl_->in_batch = true;
  bool finished = false;  // committed, or failed as a whole
  for (size_t round = 0; round <= n && !finished; ++round) {
    finished = true;
    if (auto r = impl_->Exec("BEGIN IMMEDIATE"); !r) {
      fail_rest(impl_->Rollback(r.error()));
      break;
    }
    bool restart = false;
    for (size_t i = 0; i < n && !restart; ++i) {
      if (failed[i]) continue;
      if (auto r = impl_->Exec("SAVEPOINT item"); !r) {
        results[i] = tl::unexpected(r.error());
        failed[i] = true;
        restart = true;  // the transaction's state is unknown: start over without this item
        break;
      }
      results[i] = run(i);
      if (!results[i]) {
        failed[i] = true;
        if (sqlite3_get_autocommit(impl_->db.get())) {
          restart = true;  // SQLite rolled the whole transaction back
          break;
        }
        if (auto r = impl_->Exec("ROLLBACK TO item"); !r) {
          restart = true;
          break;
        }
      }
      if (auto r = impl_->Exec("RELEASE item"); !r) {
        // Not this item's fault, perhaps; but each round must leave one out, or rounds could
        // repeat the same failure.
        results[i] = tl::unexpected(r.error());
        failed[i] = true;
        restart = true;
        break;
      }
    }
    if (restart) {
      // Whatever is left of it goes; the next round redoes the rest.
      const StoreError why = impl_->Rollback(StoreError{impl_->path.string() + ": batch lost"});
      if (!sqlite3_get_autocommit(impl_->db.get())) {
        fail_rest(why);
        break;
      }
      for (size_t i = 0; i < n; ++i) {
        if (!failed[i]) results[i] = {};
      }
      finished = false;
      continue;
    }
    if (auto r = impl_->Exec("COMMIT"); !r) fail_rest(impl_->Rollback(r.error()));
  }
  // Each round leaves at least one item out, so rounds cannot run out with items left; should
  // they, nothing was committed and no item may be reported as stored.
  if (!finished) fail_rest(StoreError{impl_->path.string() + ": batch could not be committed"});
  impl_->in_batch = false;
  BatchResult out;
  out.messages.assign(std::make_move_iterator(results.begin()),
                      std::make_move_iterator(results.begin() + messages.size()));
  out.jobs.assign(std::make_move_iterator(results.begin() + messages.size()),
                  std::make_move_iterator(results.end()));
  return out;
}

tl::expected<std::optional<MessageInfo>, StoreError> Store::GetMessage(std::string_view id) {
  using Result = tl::expected<std::optional<MessageInfo>, StoreError>;
  return impl_->Read<std::optional<MessageInfo>>([&]() -> Result {
    auto s = impl_->Prepare(
        fmt::format("SELECT {} FROM messages WHERE id = ?1", kMessageColumns).c_str());
    if (!s) return tl::unexpected(s.error());
    auto rs = impl_->Prepare(kRecipientQuery.c_str());
    if (!rs) return tl::unexpected(rs.error());
    sqlite3_bind_text(s->get(), 1, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
    const int rc = sqlite3_step(s->get());
    if (rc == SQLITE_DONE) return std::optional<MessageInfo>();
    if (rc != SQLITE_ROW) return tl::unexpected(impl_->Err("read message"));
    std::optional<MessageInfo> out = Impl::ReadMessageRow(s->get());
    auto rcpts = impl_->LoadRecipients(rs->get(), out->id);
    if (!rcpts) return tl::unexpected(rcpts.error());
    out->recipients = std::move(*rcpts);
    return out;
  });
}

tl::expected<std::optional<std::string>, StoreError> Store::GetContent(std::string_view id) {
  auto s = impl_->Prepare("SELECT data FROM contents WHERE message_id = ?1");
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
