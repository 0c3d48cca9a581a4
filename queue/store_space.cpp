// The queue file's free space: SQLite keeps the pages of purged mail for reuse, so after a
// backlog has drained the file stays as large as the backlog was. In incremental auto-vacuum
// mode (every queue created since schema 7) the daemon gives the surplus back a bounded step at
// a time; an older queue is converted once by `danerelay queue compact` (VACUUM, offline).
#include "queue/store_impl.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

namespace danerelay::queue {
namespace {

tl::expected<std::int64_t, StoreError> Pragma(Store::Impl& impl, const char* sql) {
  auto s = impl.Prepare(sql);
  if (!s) return tl::unexpected(s.error());
  std::int64_t v = 0;
  auto r = impl.EachRow(s->get(), sql, [&](sqlite3_stmt* st) { v = sqlite3_column_int64(st, 0); });
  if (!r) return tl::unexpected(r.error());
  return v;
}

}  // namespace

tl::expected<Store::Space, StoreError> Store::GetSpace() {
  Space out;
  for (auto [field, sql] :
       {std::pair{&out.page_size, "PRAGMA page_size"}, std::pair{&out.pages, "PRAGMA page_count"},
        std::pair{&out.free_pages, "PRAGMA freelist_count"}}) {
    auto v = Pragma(*impl_, sql);
    if (!v) return tl::unexpected(v.error());
    *field = *v;
  }
  auto mode = Pragma(*impl_, "PRAGMA auto_vacuum");
  if (!mode) return tl::unexpected(mode.error());
  out.incremental = *mode == 2;
  return out;
}

tl::expected<Store::Returned, StoreError> Store::ReturnFreeSpace(std::int64_t max_pages) {
  auto space = GetSpace();
  if (!space) return tl::unexpected(space.error());
  // Free pages are reused by new mail; only a surplus (over a quarter of the file, and at least
  // kMinFreePages) goes back, down to a tenth, so the file does not shrink and grow all day.
  if (!space->incremental || space->free_pages < kMinFreePages ||
      space->free_pages * 4 < space->pages) {
    return Returned{};
  }
  const std::int64_t n = std::min(max_pages, space->free_pages - space->pages / 10);
  if (n <= 0) return Returned{};
  if (auto r = impl_->Exec(fmt::format("PRAGMA incremental_vacuum({})", n).c_str()); !r) {
    return tl::unexpected(r.error());
  }
  return Returned{n, n * space->page_size};
}

tl::expected<void, StoreError> Store::Compact() {
  // auto_vacuum takes effect with the VACUUM that rewrites the file (it needs as much free disk
  // as the file holds in use, for the copy).
  if (auto r = impl_->Exec("PRAGMA auto_vacuum=INCREMENTAL; VACUUM;"); !r) {
    return tl::unexpected(r.error());
  }
  return {};
}

std::filesystem::path Store::ReservePath(const StoreOptions& options) {
  return options.path / "queue.reserve";
}

bool Store::KeepReserve() {
  const auto path = impl_->path.parent_path() / "queue.reserve";
  // Checked each second by the upkeep: one stat while it is there.
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= kReserveBytes) {
    return false;
  }
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  // Allocated, not sparse: the blocks are the room the operator gets back.
  const bool made = posix_fallocate(fd, 0, kReserveBytes) == 0 && fsync(fd) == 0;
  close(fd);
  if (!made) unlink(path.c_str());  // a short reserve holds room the queue may need now
  return made;
}

bool Store::GiveBackReserve() {
  // unlink(2) itself, not std::filesystem::remove: the blocks are free when it returns.
  return unlink((impl_->path.parent_path() / "queue.reserve").c_str()) == 0;
}

}  // namespace danerelay::queue
