#include "queue/upkeep.hpp"

#include <gtest/gtest.h>

#include "queue/store_test_fixture.hpp"

namespace danerelay::queue {
namespace {

// Expiry returns mail nobody is attempting, in one bounce per message; a message with a
// recipient in delivery is left to that attempt. The command line's writes are noticed.
TEST_F(StoreTest, UpkeepExpiresIdleMailAndNoticesTheCommandLine) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  const NewMessage idle = Message("IDLE"), busy = Message("BUSY");
  const NewMessage* batch[] = {&idle, &busy};
  for (const auto& r : store->InsertBatch(batch)) ASSERT_TRUE(r);
  // BUSY's first recipient is in delivery.
  Store::Selection only_idle;
  only_idle.ids = {"IDLE"};
  ASSERT_TRUE(store->Hold(only_idle));
  ASSERT_TRUE(store->ClaimDue(busy.arrival, 10));
  QueueIdGenerator ids;
  UpkeepRequest req;
  req.max_lifetime = std::chrono::hours(120);
  req.ids = &ids;
  req.notice = NoticeOptions("relay.example");

  req.now = idle.arrival + std::chrono::hours(119);
  UpkeepResult early = RunUpkeep(*store, req);
  EXPECT_FALSE(early.error);
  EXPECT_EQ(early.expired.recipients, 0);

  req.now = idle.arrival + std::chrono::hours(120);
  UpkeepResult r = RunUpkeep(*store, req);
  ASSERT_FALSE(r.error) << r.error->message;
  EXPECT_EQ(r.expired.messages, std::vector<std::string>{"IDLE"});
  EXPECT_EQ(r.expired.recipients, 2);
  auto list = store->ListMessages({});
  ASSERT_TRUE(list);
  // BUSY is still pending; the one bounce for IDLE is queued (from <>, to alice).
  int bounces = 0;
  for (const auto& m : *list) {
    EXPECT_NE(m.id, "IDLE");
    if (m.sender.empty()) {
      ++bounces;
      EXPECT_EQ(m.recipients.at(0).address, "alice@example.org");
    }
  }
  EXPECT_EQ(bounces, 1);

  // A second connection (the command line) flushes: the daemon's next upkeep notices.
  auto cli = Store::Open(options_, OpenMode::kReadWrite);
  ASSERT_TRUE(cli);
  EXPECT_FALSE(RunUpkeep(*store, req).changed_elsewhere);
  ASSERT_TRUE((*cli)->Flush(Store::Selection{}, idle.arrival));
  UpkeepResult seen = RunUpkeep(*store, req);
  EXPECT_TRUE(seen.changed_elsewhere);
  EXPECT_TRUE(seen.reread);
}

// With the purge, the free pages of a drained backlog go back to the file system, a step at a
// time (store_space.cpp); without it, upkeep leaves them.
TEST_F(StoreTest, UpkeepGivesTheFreeSpaceOfADrainedBacklogBack) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  ASSERT_TRUE(InsertBacklog(*store));
  ASSERT_TRUE(store->Delete(Store::Selection{}));  // ~38 MB free
  const TimePoint arrival = Message("X").arrival;
  QueueIdGenerator ids;
  UpkeepRequest req;
  req.now = arrival;
  req.ids = &ids;
  EXPECT_EQ(RunUpkeep(*store, req).returned.pages, 0);  // no purge this tick
  req.purge_before = arrival;
  const UpkeepResult r = RunUpkeep(*store, req);
  ASSERT_FALSE(r.error) << r.error->message;
  EXPECT_EQ(r.returned.pages, UpkeepRequest::kReturnPages);  // a full step: more next tick
  EXPECT_GT(r.returned.bytes, 0);
  for (int tick = 0; tick < 10 && RunUpkeep(*store, req).returned.pages > 0; ++tick) {
  }
  EXPECT_LT(store->GetSpace()->free_pages, Store::kMinFreePages);
}

}  // namespace
}  // namespace danerelay::queue
