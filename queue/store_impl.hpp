#pragma once
// Internal to queue/: the SQLite connection behind Store, shared by store.cpp (messages) and
// store_delivery.cpp (the delivery side). Nothing outside queue/ includes this.
#include <sqlite3.h>

#include <fmt/format.h>

#include "queue/store.hpp"

namespace danerelay::queue {
namespace internal {

struct DbClose {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalize {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using DbPtr = std::unique_ptr<sqlite3, DbClose>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalize>;

inline std::int64_t ToMicros(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}
inline TimePoint FromMicros(std::int64_t us) { return TimePoint(std::chrono::microseconds(us)); }

inline std::string ColumnText(sqlite3_stmt* s, int col) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(s, col));
  return text ? std::string(text, static_cast<size_t>(sqlite3_column_bytes(s, col))) : "";
}

inline DsnRet DsnRetFromString(std::string_view text) {
  if (text == "FULL") return DsnRet::kFull;
  if (text == "HDRS") return DsnRet::kHdrs;
  return DsnRet::kUnspecified;
}

}  // namespace internal

using namespace internal;

extern const char* const kMigrations[Store::kSchemaVersion];
inline constexpr const char* kMessageColumns =
    "id, arrival_us, sender, size, client_address, client_helo, protocol, body_8bitmime, "
    "smtputf8, dsn_ret, dsn_envid, auth_user, requiretls, mail_auth, tls_report";
inline constexpr int kMessageColumnCount = 15;  // the columns above: what follows them is at 15
inline constexpr const char* kRecipientColumns =
    "idx, address, state, notify, orcpt, attempts, next_attempt_us, last_status, last_reply, "
    "last_remote, last_attempt_us, delay_warned, last_reply_remote, last_cause, site";
// The columns of an attempt after its message and recipient, in the order BindAttempt binds
// and ReadAttempt reads them (one list for the insert and both readers).
inline constexpr const char* kAttemptColumns =
    "time_us, mx_host, ip, dnssec_mx, dnssec_address, dnssec_tlsa, tls_verdict, tlsa_record, "
    "reply, status, note, mta_sts, result_type, sending_ip, session, policy_type, tlsa_policy, "
    "sts_policy_id, sts_problem, site";
inline constexpr int kAttemptColumnCount = 20;
// Binds `a` to ?first .. ?first + kAttemptColumnCount - 1.
void BindAttempt(sqlite3_stmt* s, int first, const AttemptRecord& a);
// Reads the columns from `first` on (all but recipient_index).
AttemptRecord ReadAttempt(sqlite3_stmt* s, int first);

struct Store::Impl {
  DbPtr db;
  std::filesystem::path path;
  int schema_version = 0;
  std::int64_t data_version = 0;  // PRAGMA data_version at the last ChangedElsewhere()
  bool in_batch = false;          // CommitBatch's transaction is open: Write() joins it
  StmtPtr insert_message, insert_content, insert_recipient;  // prepared on first use

  // Inserts one message and its recipients into the open transaction.
  tl::expected<void, StoreError> InsertMessage(const NewMessage& m);

  StoreError Err(std::string_view what) const {
    return StoreError{fmt::format("{}: {}: {}", path.string(), what, sqlite3_errmsg(db.get())),
                      sqlite3_extended_errcode(db.get()) & 0xff};
  }

  tl::expected<void, StoreError> Exec(const char* sql) {
    char* msg = nullptr;
    if (const int rc = sqlite3_exec(db.get(), sql, nullptr, nullptr, &msg); rc != SQLITE_OK) {
      StoreError e{fmt::format("{}: {}", path.string(), msg ? msg : "unknown error"), rc & 0xff};
      sqlite3_free(msg);
      return tl::unexpected(e);
    }
    return {};
  }

  // Ends the open transaction after a failure. The result matters: a transaction left open
  // would change what the next BEGIN or SAVEPOINT means, so a failed rollback is reported.
  StoreError Rollback(StoreError why) {
    if (sqlite3_get_autocommit(db.get())) return why;  // SQLite already rolled it back
    if (auto r = Exec("ROLLBACK"); !r) why.message += "; rollback failed: " + r.error().message;
    return why;
  }

  // Runs `f` as one write transaction, or inside CommitBatch's when one is open (the batch's
  // savepoint then undoes it on failure).
  template <typename F>
  auto Write(F&& f) -> decltype(f()) {
    if (in_batch) return f();
    if (auto r = Exec("BEGIN IMMEDIATE"); !r) return tl::unexpected(Rollback(r.error()));
    auto result = f();
    if (!result) return tl::unexpected(Rollback(result.error()));
    if (auto r = Exec("COMMIT"); !r) return tl::unexpected(Rollback(r.error()));
    return result;
  }

  // Runs `f` in one read transaction: a consistent snapshot while the daemon writes.
  template <typename T, typename F>
  tl::expected<T, StoreError> Read(F&& f) {
    const bool own = sqlite3_get_autocommit(db.get()) != 0;
    if (own) {
      if (auto r = Exec("BEGIN"); !r) return tl::unexpected(r.error());
    }
    tl::expected<T, StoreError> result = f();
    if (own) {
      // A read transaction has nothing to lose; a failure to end it is still an error, since
      // the connection would keep its old snapshot.
      if (auto r = Exec("COMMIT"); !r) return tl::unexpected(Rollback(r.error()));
    }
    return result;
  }

  // Steps `s` through every row, calling `row(s)`; an error is an error, never "no more rows".
  template <typename F>
  tl::expected<void, StoreError> EachRow(sqlite3_stmt* s, std::string_view what, F&& row) {
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) row(s);
    if (rc != SQLITE_DONE) return tl::unexpected(Err(what));
    return {};
  }

  // Runs one statement that returns no rows.
  tl::expected<void, StoreError> StepDone(sqlite3_stmt* s, std::string_view what) {
    if (sqlite3_step(s) != SQLITE_DONE) return tl::unexpected(Err(what));
    return {};
  }

  tl::expected<StmtPtr, StoreError> Prepare(const char* sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db.get(), sql, -1, &s, nullptr) != SQLITE_OK) {
      return tl::unexpected(Err("prepare"));
    }
    return StmtPtr(s);
  }

  tl::expected<int, StoreError> UserVersion() {
    auto s = Prepare("PRAGMA user_version");
    if (!s) return tl::unexpected(s.error());
    if (sqlite3_step(s->get()) != SQLITE_ROW) return tl::unexpected(Err("user_version"));
    return sqlite3_column_int(s->get(), 0);
  }

  tl::expected<void, StoreError> Migrate() {
    auto version = UserVersion();
    if (!version) return tl::unexpected(version.error());
    if (*version > kSchemaVersion) {
      return tl::unexpected(
          StoreError{fmt::format("{}: schema version {} is newer than this build understands ({})",
                                 path.string(), *version, kSchemaVersion)});
    }
    for (int v = *version; v < kSchemaVersion; ++v) {
      if (auto r = Exec("BEGIN IMMEDIATE"); !r) return r;
      auto r = Exec(kMigrations[static_cast<size_t>(v)]);
      if (r) r = Exec(fmt::format("PRAGMA user_version = {}", v + 1).c_str());
      if (r) r = Exec("COMMIT");
      if (!r) return tl::unexpected(Rollback(r.error()));
    }
    schema_version = kSchemaVersion;
    return {};
  }

  // Columns as in kRecipientColumns.
  static StoredRecipient ReadRecipientRow(sqlite3_stmt* s) {
    StoredRecipient r;
    r.index = sqlite3_column_int(s, 0);
    r.address = ColumnText(s, 1);
    r.state = RecipientStateFromString(ColumnText(s, 2)).value_or(RecipientState::kQueued);
    r.notify = static_cast<unsigned>(sqlite3_column_int(s, 3));
    r.orcpt = ColumnText(s, 4);
    r.attempts = sqlite3_column_int(s, 5);
    if (sqlite3_column_type(s, 6) != SQLITE_NULL) {
      r.next_attempt = FromMicros(sqlite3_column_int64(s, 6));
    }
    r.last_status = ColumnText(s, 7);
    r.last_reply = ColumnText(s, 8);
    r.last_remote = ColumnText(s, 9);
    if (sqlite3_column_type(s, 10) != SQLITE_NULL) {
      r.last_attempt = FromMicros(sqlite3_column_int64(s, 10));
    }
    r.delay_warned = sqlite3_column_int(s, 11) != 0;
    r.last_reply_remote = sqlite3_column_int(s, 12) != 0;
    r.last_cause = CauseFromToken(ColumnText(s, 13));
    r.site = ColumnText(s, 14);
    return r;
  }

  tl::expected<std::vector<StoredRecipient>, StoreError> LoadRecipients(sqlite3_stmt* s,
                                                                        std::string_view id) {
    std::vector<StoredRecipient> out;
    sqlite3_reset(s);
    sqlite3_bind_text(s, 1, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
    auto r = EachRow(s, "read recipients",
                     [&](sqlite3_stmt* st) { out.push_back(ReadRecipientRow(st)); });
    if (!r) return tl::unexpected(r.error());
    return out;
  }

  static MessageInfo ReadMessageRow(sqlite3_stmt* s) {
    MessageInfo m;
    m.id = ColumnText(s, 0);
    m.arrival = FromMicros(sqlite3_column_int64(s, 1));
    m.sender = ColumnText(s, 2);
    m.size = sqlite3_column_int64(s, 3);
    m.client_address = ColumnText(s, 4);
    m.client_helo = ColumnText(s, 5);
    m.protocol = ColumnText(s, 6);
    m.body_8bitmime = sqlite3_column_int(s, 7) != 0;
    m.smtputf8 = sqlite3_column_int(s, 8) != 0;
    m.dsn_ret = DsnRetFromString(ColumnText(s, 9));
    m.dsn_envid = ColumnText(s, 10);
    m.auth_user = ColumnText(s, 11);
    m.requiretls = sqlite3_column_int(s, 12) != 0;
    if (sqlite3_column_type(s, 13) != SQLITE_NULL) m.mail_auth = ColumnText(s, 13);
    m.tls_report = sqlite3_column_int(s, 14) != 0;
    return m;
  }
};

}  // namespace danerelay::queue
