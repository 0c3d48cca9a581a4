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
