// `danerelay queue backup`: a consistent copy of the queue while the daemon runs. SQLite's
// online backup API copies every page under one read transaction of the source, which in WAL
// mode does not stop the daemon's writers; the copy is then made self-contained (no -wal file),
// checked, made durable and only then given its name, so FILE is either a whole backup or
// absent.
#include "queue/store_impl.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

namespace danerelay::queue {
namespace {

struct DestCloser {
  void operator()(sqlite3* db) const { sqlite3_close(db); }
};
using Dest = std::unique_ptr<sqlite3, DestCloser>;

StoreError DestErr(const std::filesystem::path& path, sqlite3* db, std::string_view what) {
  return StoreError{fmt::format("{}: {}: {}", path.string(), what, sqlite3_errmsg(db)),
                    sqlite3_extended_errcode(db) & 0xff};
}

// One value of a one-row query on the copy ("" / 0 when there is no row).
tl::expected<std::string, StoreError> One(const std::filesystem::path& path, sqlite3* db,
                                          const char* sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) {
    return tl::unexpected(DestErr(path, db, sql));
  }
  std::string out;
  const int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    const auto* text = sqlite3_column_text(s, 0);
    out = text ? reinterpret_cast<const char*>(text) : "";
  }
  sqlite3_finalize(s);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return tl::unexpected(DestErr(path, db, sql));
  return out;
}

// Copies every page of `source` into `dest`. A busy source (rare in WAL mode: a checkpoint
// that truncates) is waited for, a bounded number of times.
tl::expected<void, StoreError> CopyPages(sqlite3* source, sqlite3* dest,
                                         const std::filesystem::path& path) {
  sqlite3_backup* b = sqlite3_backup_init(dest, "main", source, "main");
  if (!b) return tl::unexpected(DestErr(path, dest, "backup"));
  int rc = SQLITE_OK;
  for (int tries = 0; tries < 100; ++tries) {
    rc = sqlite3_backup_step(b, -1);
    if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  sqlite3_backup_finish(b);
  if (rc != SQLITE_DONE) {
    return tl::unexpected(
        StoreError{fmt::format("{}: backup: {}", path.string(), sqlite3_errstr(rc)), rc & 0xff});
  }
  return {};
}

// The copy on its own: no write-ahead log beside it, intact, and what it holds.
tl::expected<Store::BackupInfo, StoreError> SealCopy(sqlite3* dest,
                                                     const std::filesystem::path& path) {
  char* msg = nullptr;
  if (sqlite3_exec(dest, "PRAGMA journal_mode=DELETE", nullptr, nullptr, &msg) != SQLITE_OK) {
    sqlite3_free(msg);
    return tl::unexpected(DestErr(path, dest, "journal_mode"));
  }
  auto check = One(path, dest, "PRAGMA quick_check");
  if (!check) return tl::unexpected(check.error());
  if (*check != "ok") {
    return tl::unexpected(
        StoreError{fmt::format("{}: the copy fails its check: {}", path.string(), *check)});
  }
  Store::BackupInfo info;
  for (auto [field, sql] : {std::pair{&info.schema_version, "PRAGMA user_version"},
                            std::pair{&info.messages, "SELECT count(*) FROM messages"},
                            std::pair{&info.pending_messages,
                                      "SELECT count(*) FROM messages WHERE completed_us IS NULL"},
                            std::pair{&info.bytes,
                                      "SELECT page_count * page_size FROM pragma_page_count(), "
                                      "pragma_page_size()"}}) {
    auto v = One(path, dest, sql);
    if (!v) return tl::unexpected(v.error());
    *field = std::stoll(v->empty() ? "0" : *v);
  }
  return info;
}

}  // namespace

tl::expected<Store::BackupInfo, StoreError> Store::Backup(const std::filesystem::path& target) {
  std::error_code ec;
  if (std::filesystem::exists(target, ec) || std::filesystem::is_symlink(target, ec)) {
    return tl::unexpected(
        StoreError{fmt::format("{}: exists; a backup never overwrites a file", target.string())});
  }
  // Made here, 0600 and not through a link, so the mail in it is never readable by others.
  const std::filesystem::path partial = target.string() + ".partial";
  const int fd = open(partial.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    return tl::unexpected(StoreError{
        fmt::format("{}: {}{}", partial.string(), std::strerror(errno),
                    errno == EEXIST ? " (left by a backup that did not finish; remove it)" : "")});
  }
  auto fail = [&](StoreError e) -> tl::expected<BackupInfo, StoreError> {
    close(fd);
    unlink(partial.c_str());
    return tl::unexpected(std::move(e));
  };
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(partial.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr);
  Dest dest(raw);
  if (rc != SQLITE_OK) return fail(DestErr(partial, raw, "open"));
  if (auto r = CopyPages(impl_->db.get(), dest.get(), partial); !r) return fail(r.error());
  auto info = SealCopy(dest.get(), partial);
  if (!info) return fail(info.error());
  dest.reset();
  if (fsync(fd) != 0) {
    return fail(StoreError{fmt::format("{}: fsync: {}", partial.string(), std::strerror(errno))});
  }
  close(fd);
  if (rename(partial.c_str(), target.c_str()) != 0) {
    const int e = errno;
    unlink(partial.c_str());
    return tl::unexpected(
        StoreError{fmt::format("{}: rename: {}", target.string(), std::strerror(e))});
  }
  const auto dir = target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
  if (const int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return info;
}

}  // namespace danerelay::queue
