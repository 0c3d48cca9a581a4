// `danerelay queue backup` (Store::Backup): a consistent copy beside a writer, never over an
// existing file, private, self-contained, and a queue the daemon can run on.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <set>
#include <thread>

#include "queue/store_test_fixture.hpp"

namespace danerelay::queue {
namespace {

class BackupTest : public StoreTest {
 protected:
  std::filesystem::path Target() const { return options_.path.string() + "-backup.db"; }
  void TearDown() override {
    for (const auto& p : {Target(), std::filesystem::path(Target().string() + ".partial")}) {
      std::filesystem::remove(p);
    }
    std::filesystem::remove_all(RestoredOptions().path);
    StoreTest::TearDown();
  }
  StoreOptions RestoredOptions() const {
    StoreOptions o = options_;
    o.path = options_.path.string() + "-restored";
    return o;
  }
  // The backup put where a queue lives, as the manual page says to restore one.
  std::unique_ptr<Store> OpenRestored() {
    const StoreOptions o = RestoredOptions();
    std::filesystem::create_directories(o.path);
    std::filesystem::copy_file(Target(), Store::DatabasePath(o));
    auto s = Store::Open(o, OpenMode::kReadWrite);
    EXPECT_TRUE(s) << (s ? "" : s.error().message);
    return s ? std::move(*s) : nullptr;
  }
};

// Messages committed one by one while the backup runs: the copy holds every message committed
// before the backup began, and a prefix of the sequence (a consistent snapshot: no gap).
TEST_F(BackupTest, ConsistentCopyBesideAWriter) {
  auto writer = OpenRw();
  ASSERT_TRUE(writer);
  ASSERT_TRUE(InsertBacklog(*writer));  // ~38 MB, so the copy takes a while
  std::atomic<int> committed{0};
  std::atomic<bool> stop{false};
  std::thread load([&] {
    for (int i = 0; i < 100000 && !stop; ++i) {
      const NewMessage m = Message("W" + std::to_string(i));
      const NewMessage* one[] = {&m};
      if (!writer->InsertBatch(one)[0]) return;
      committed = i + 1;
    }
  });
  while (committed < 20) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto reader = Store::Open(options_, OpenMode::kReadOnly);
  ASSERT_TRUE(reader);
  const int before = committed;
  auto info = (*reader)->Backup(Target());
  const int after = committed;
  stop = true;
  load.join();
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->schema_version, Store::kSchemaVersion);

  auto restored = OpenRestored();
  ASSERT_TRUE(restored);
  auto all = restored->ListMessages(Store::Selection{});
  ASSERT_TRUE(all);
  std::set<std::string> ids;
  for (const auto& m : *all) ids.insert(m.id);
  EXPECT_EQ(static_cast<std::int64_t>(ids.size()), info->messages);
  int written = 0;
  while (ids.contains("W" + std::to_string(written))) ++written;
  EXPECT_GE(written, before);
  EXPECT_LE(written, after);
  EXPECT_EQ(ids.size(), static_cast<size_t>(kBacklog + written)) << "a gap: not a snapshot";
  EXPECT_EQ(restored->GetContent("W0").value(),
            std::optional<std::string>("Subject: hi\r\n\r\nbody\r\n"));
  EXPECT_EQ(restored->ClaimDue(TimePoint::max(), 5)->size(), 5u);
}

TEST_F(BackupTest, PrivateSelfContainedAndNeverOverwrites) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  const NewMessage m = Message("M1");
  const NewMessage* one[] = {&m};
  ASSERT_TRUE(store->InsertBatch(one)[0]);
  auto info = store->Backup(Target());
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->messages, 1);
  EXPECT_EQ(info->pending_messages, 1);
  struct stat st {};
  ASSERT_EQ(stat(Target().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(std::filesystem::exists(Target().string() + "-wal"));
  EXPECT_FALSE(std::filesystem::exists(Target().string() + ".partial"));

  const auto size = std::filesystem::file_size(Target());
  auto again = store->Backup(Target());
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("never overwrites"), std::string::npos);
  EXPECT_EQ(std::filesystem::file_size(Target()), size);
  // Nor through a symbolic link.
  std::filesystem::remove(Target());
  std::filesystem::create_symlink("/nonexistent-danerelay-target", Target());
  EXPECT_FALSE(store->Backup(Target()));
  std::filesystem::remove(Target());
  auto into_missing_dir = store->Backup(options_.path / "no-such-dir" / "b.db");
  ASSERT_FALSE(into_missing_dir);
  EXPECT_NE(into_missing_dir.error().message.find("No such file"), std::string::npos)
      << into_missing_dir.error().message;
}

}  // namespace
}  // namespace danerelay::queue
