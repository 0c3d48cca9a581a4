// Suspensions park due mail without an attempt and wake it on resume; quota counters persist.
#include "queue/store_test_fixture.hpp"

namespace danerelay::queue {
namespace {

TimePoint At(int s) { return TimePoint(std::chrono::seconds(1'790'000'000 + s)); }

TEST_F(StoreTest, SuspendedDomainIsParkedNotClaimedAndResumeWakesIt) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  NewMessage m = Message("S1");  // bob@example.net, carol@example.com, due at At(0)
  const NewMessage* batch[] = {&m};
  ASSERT_TRUE(store->InsertBatch(batch)[0]);
  Store::Suspension s;
  s.name = "Example.NET";
  s.until = At(7200);
  s.reason = "maintenance";
  s.created = At(0);
  ASSERT_TRUE(store->Suspend(s));

  auto claimed = store->ClaimDue(At(1), 10);
  ASSERT_TRUE(claimed);
  ASSERT_EQ(claimed->size(), 1u);
  ASSERT_EQ((*claimed)[0].recipients.size(), 1u);
  EXPECT_EQ((*claimed)[0].recipients[0].address, "carol@example.com");
  auto info = store->GetMessage("S1");
  ASSERT_TRUE(info && *info);
  const StoredRecipient& bob = (*info)->recipients[0];
  EXPECT_EQ(bob.state, RecipientState::kQueued);  // not deferred
  EXPECT_EQ(bob.attempts, 0);
  EXPECT_EQ(bob.next_attempt, At(7200));
  auto next = store->NextDue();
  ASSERT_TRUE(next && *next);
  EXPECT_EQ(**next, At(7200));  // the scheduler wakes at the suspension's end

  auto list = store->ListSuspensions();
  ASSERT_TRUE(list && list->size() == 1);
  EXPECT_EQ((*list)[0].name, "example.net");
  EXPECT_EQ((*list)[0].reason, "maintenance");

  auto resumed = store->Resume("domain", "example.net", At(60));
  ASSERT_TRUE(resumed && *resumed);
  EXPECT_FALSE(*store->Resume("domain", "example.net", At(61)));
  claimed = store->ClaimDue(At(61), 10);
  ASSERT_TRUE(claimed && claimed->size() == 1);
  EXPECT_EQ((*claimed)[0].recipients[0].address, "bob@example.net");
}

TEST_F(StoreTest, EndedSuspensionLetsMailBeClaimed) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  NewMessage m = Message("S2");
  const NewMessage* batch[] = {&m};
  ASSERT_TRUE(store->InsertBatch(batch)[0]);
  Store::Suspension s;
  s.name = "example.net";
  s.until = At(100);
  s.created = At(0);
  ASSERT_TRUE(store->Suspend(s));
  EXPECT_EQ(store->ClaimDue(At(1), 10)->at(0).recipients.size(), 1u);
  auto later = store->ClaimDue(At(100), 10);
  ASSERT_TRUE(later && later->size() == 1);
  EXPECT_EQ((*later)[0].recipients[0].address, "bob@example.net");
}

// The daemon's suspension (a throttling reply) lengthens one in force, never shortens it; the
// operator's replaces whatever is there.
TEST_F(StoreTest, TheDaemonsSuspensionOnlyLengthensAndKeepsItsOrigin) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  Store::Suspension op;
  op.name = "example.net";
  op.until = At(7200);
  op.reason = "maintenance";
  op.user = "root";
  op.created = At(0);
  ASSERT_TRUE(store->Suspend(op));
  Store::Suspension mine = op;
  mine.until = At(600);
  mine.reason = "on_reply '^421': 421 4.7.28 slow down";
  mine.user = "danerelayd";
  mine.origin = "on_reply";
  ASSERT_TRUE(store->Suspend(mine));
  auto list = store->ListSuspensions();
  ASSERT_TRUE(list && list->size() == 1);
  EXPECT_EQ((*list)[0].until, At(7200));
  EXPECT_EQ((*list)[0].origin, "operator");
  mine.until = At(9000);
  ASSERT_TRUE(store->Suspend(mine));
  list = store->ListSuspensions();
  EXPECT_EQ((*list)[0].until, At(9000));
  EXPECT_EQ((*list)[0].origin, "on_reply");
  EXPECT_EQ((*list)[0].reason, mine.reason);
  op.until = At(60);  // the operator may shorten it
  ASSERT_TRUE(store->Suspend(op));
  EXPECT_EQ(store->ListSuspensions()->at(0).until, At(60));
  // The daemon ends only its own kind (a dead destination that answers again).
  EXPECT_FALSE(*store->Resume("domain", "example.net", At(61), "dead"));
  EXPECT_TRUE(*store->Resume("domain", "example.net", At(61)));
}

// Claimed, then found suspended before any connection: back to waiting until the table's
// suspension ends, no attempt counted; with none in force (resumed meanwhile), due at once.
TEST_F(StoreTest, ParkedRecipientsWaitWithoutAnAttempt) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  NewMessage m = Message("S3");
  const NewMessage* batch[] = {&m};
  ASSERT_TRUE(store->InsertBatch(batch)[0]);
  auto claimed = store->ClaimDue(At(1), 10);
  ASSERT_TRUE(claimed && claimed->size() == 1);
  Store::Suspension s;
  s.name = "example.net";
  s.until = At(900);
  s.created = At(0);
  ASSERT_TRUE(store->Suspend(s));
  auto parked = store->Park("S3", {0}, At(2));
  ASSERT_TRUE(parked);
  EXPECT_EQ(*parked, std::optional<TimePoint>(At(900)));
  auto info = store->GetMessage("S3");
  ASSERT_TRUE(info && *info);
  EXPECT_EQ((*info)->recipients[0].state, RecipientState::kQueued);
  EXPECT_EQ((*info)->recipients[0].attempts, 0);
  EXPECT_EQ((*info)->recipients[0].next_attempt, At(900));
  EXPECT_EQ((*info)->recipients[1].state, RecipientState::kAttempting);  // not parked
  EXPECT_EQ(store->ClaimDue(At(899), 10)->size(), 0u);
  EXPECT_EQ(store->ClaimDue(At(900), 10)->size(), 1u);

  ASSERT_TRUE(store->Resume("domain", "example.net", At(901)));
  EXPECT_EQ(*store->Park("S3", {0}, At(902)), std::optional<TimePoint>(At(902)));
  EXPECT_EQ(*store->Park("S3", {0}, At(903)), std::nullopt);  // no longer in delivery
}

TEST_F(StoreTest, QuotaUsageSurvivesReopenAndOldWindowsGo) {
  {
    auto store = OpenRw();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->PutQuotaUsage(
        {{"user:a messages 86400", At(0), 7}, {"user:b messages 60", At(-600), 1}}, At(-3600)));
    ASSERT_TRUE(store->PutQuotaUsage({{"user:a messages 86400", At(0), 8}}, At(-60)));
  }
  auto store = OpenRw();
  auto rows = store->LoadQuotaUsage();
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].key, "user:a messages 86400");
  EXPECT_EQ((*rows)[0].count, 8);
}

}  // namespace
}  // namespace danerelay::queue
