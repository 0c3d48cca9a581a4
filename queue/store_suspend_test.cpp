// Suspensions park due mail without an attempt and wake it on resume; quota counters persist.
#include <algorithm>

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

  auto list = store->ListSuspensions(At(0));
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
  auto list = store->ListSuspensions(At(0));
  ASSERT_TRUE(list && list->size() == 1);
  EXPECT_EQ((*list)[0].until, At(7200));
  EXPECT_EQ((*list)[0].origin, "operator");
  mine.until = At(9000);
  ASSERT_TRUE(store->Suspend(mine));
  list = store->ListSuspensions(At(0));
  EXPECT_EQ((*list)[0].until, At(9000));
  EXPECT_EQ((*list)[0].origin, "on_reply");
  EXPECT_EQ((*list)[0].reason, mine.reason);
  op.until = At(60);  // the operator may shorten it
  ASSERT_TRUE(store->Suspend(op));
  EXPECT_EQ(store->ListSuspensions(At(0))->at(0).until, At(60));
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

// A deferred delivery whose attempt went to `site`: bob (0) deferred until `next`, carol (1)
// delivered.
void DeferBobAt(Store& store, const std::string& id, const std::string& site, TimePoint now,
                TimePoint next) {
  AttemptRecord a;
  a.recipient_index = 0;
  a.time = now;
  a.mx_host = "mx1.example.net";
  a.status = "4.4.1";
  a.reply = "connection refused";
  a.site = site;
  AttemptRecord c = a;
  c.recipient_index = 1;
  c.status = "2.0.0";
  c.site = "";  // the attempt knew no site: carol's stays unknown
  ASSERT_TRUE(store.RecordDelivery(
      id,
      {{0, RecipientState::kDeferred, next, "4.4.1", "connection refused", "mx1.example.net"},
       {1, RecipientState::kDelivered, std::nullopt, "2.0.0", "250 ok", "mx1.example.net"}},
      {a, c}, {}, now));
}

// An attempt's site is stored with it, and becomes its recipient's (the last attempt that
// knew one); `queue stats` counts the waiting recipients by it.
TEST_F(StoreTest, AttemptsSiteIsStoredAndBecomesTheRecipientsSite) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  NewMessage m = Message("T1");
  NewMessage n = Message("T2");
  const NewMessage* batch[] = {&m, &n};
  ASSERT_TRUE(store->InsertBatch(batch)[0]);
  EXPECT_EQ(store->GetMessage("T1").value()->recipients[0].site, "");
  ASSERT_TRUE(store->ClaimDue(At(1), 10));
  AttemptRecord first;
  first.recipient_index = 0;
  first.time = At(1);
  first.site = "mx1.example.net,mx2.example.net";
  AttemptRecord second = first;
  second.site = "Google";  // lower-cased for the recipient
  AttemptRecord third = first;
  third.site = "";  // the MX lookup failed on the next host: keeps the last known
  ASSERT_TRUE(store->RecordDelivery(
      "T1", {{0, RecipientState::kDeferred, At(600), "4.4.1", "refused", "mx"}},
      {first, second, third}, {}, At(2)));
  auto attempts = store->GetAttempts("T1");
  ASSERT_TRUE(attempts && attempts->size() == 3u);
  EXPECT_EQ((*attempts)[0].site, "mx1.example.net,mx2.example.net");
  EXPECT_EQ((*attempts)[1].site, "Google");
  EXPECT_EQ((*attempts)[2].site, "");
  auto info = store->GetMessage("T1");
  ASSERT_TRUE(info && *info);
  EXPECT_EQ((*info)->recipients[0].site, "google");
  EXPECT_EQ((*info)->recipients[1].site, "");
  DeferBobAt(*store, "T2", "google", At(2), At(600));

  // Waiting: T1's bob (deferred, google) and carol (attempting: not counted); T2's bob
  // (google); nothing else.
  auto sites = store->GetSites(20);
  ASSERT_TRUE(sites);
  ASSERT_EQ(sites->top.size(), 1u);
  EXPECT_EQ(sites->top[0], (std::pair<std::string, int>("google", 2)));
  EXPECT_EQ(sites->unknown, 0);
  NewMessage fresh = Message("T3");  // two recipients, no site yet
  const NewMessage* more[] = {&fresh};
  ASSERT_TRUE(store->InsertBatch(more)[0]);
  ASSERT_TRUE(store->Park("T1", {1}, At(3), std::nullopt, "mx.example.com"));
  sites = store->GetSites(1);
  ASSERT_TRUE(sites);
  ASSERT_EQ(sites->top.size(), 1u);
  EXPECT_EQ(sites->top[0].first, "google");
  EXPECT_EQ(sites->more_sites, 1);
  EXPECT_EQ(sites->more_recipients, 1);
  EXPECT_EQ(sites->unknown, 2);
}

// Mail of a suspended site waits as a suspended domain's does: parked without an attempt at
// the claim, due again when the suspension ends or is resumed; mail of other sites, and mail
// whose site is not yet known, goes on.
TEST_F(StoreTest, SuspendedSiteIsParkedNotClaimedAndResumeWakesIt) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  NewMessage m = Message("U1");
  NewMessage other = Message("U2");
  NewMessage fresh = Message("U3");
  const NewMessage* batch[] = {&m, &other};
  ASSERT_TRUE(store->InsertBatch(batch)[0]);
  ASSERT_EQ(store->ClaimDue(At(1), 10)->size(), 2u);
  DeferBobAt(*store, "U1", "google", At(2), At(100));
  DeferBobAt(*store, "U2", "mx.example.org", At(2), At(100));
  const NewMessage* later[] = {&fresh};
  ASSERT_TRUE(store->InsertBatch(later)[0]);  // due at At(0), its site not yet known
  Store::Suspension s;
  s.kind = "site";
  s.name = "Google";
  s.until = At(7200);
  s.reason = "421 4.7.28 rate limited";
  s.created = At(50);
  ASSERT_TRUE(store->Suspend(s));

  auto claimed = store->ClaimDue(At(101), 10);
  ASSERT_TRUE(claimed);
  std::vector<std::string> ids;
  for (const auto& c : *claimed) ids.push_back(c.id);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"U2", "U3"}));  // not U1
  auto info = store->GetMessage("U1");
  ASSERT_TRUE(info && *info);
  const StoredRecipient& bob = (*info)->recipients[0];
  EXPECT_EQ(bob.state, RecipientState::kDeferred);  // as it was
  EXPECT_EQ(bob.attempts, 1);                       // no attempt counted
  EXPECT_EQ(bob.next_attempt, At(7200));
  EXPECT_EQ(store->ClaimDue(At(7199), 10)->size(), 0u);

  // A domain suspension that ends later wins; resuming the site wakes only what waits for it.
  Store::Suspension d;
  d.name = "example.net";
  d.until = At(9000);
  d.created = At(50);
  ASSERT_TRUE(store->Resume("site", "google", At(200)).value());
  EXPECT_EQ(store->GetMessage("U1").value()->recipients[0].next_attempt, At(200));
  ASSERT_TRUE(store->Suspend(s));
  ASSERT_TRUE(store->Suspend(d));
  EXPECT_EQ(store->ClaimDue(At(201), 10)->size(), 0u);
  EXPECT_EQ(store->GetMessage("U1").value()->recipients[0].next_attempt, At(9000));
  EXPECT_TRUE(store->Resume("site", "google", At(202)).value());
  EXPECT_EQ(store->GetMessage("U1").value()->recipients[0].next_attempt, At(9000));
  EXPECT_TRUE(store->Resume("domain", "example.net", At(203)).value());
  EXPECT_FALSE(store->Resume("site", "google", At(204)).value());
  claimed = store->ClaimDue(At(204), 10);
  ASSERT_TRUE(claimed && claimed->size() == 1u);
  EXPECT_EQ((*claimed)[0].id, "U1");
  EXPECT_EQ((*claimed)[0].recipients[0].address, "bob@example.net");
}

TEST_F(StoreTest, EndedSiteSuspensionLetsMailBeClaimed) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  NewMessage m = Message("V1");
  const NewMessage* batch[] = {&m};
  ASSERT_TRUE(store->InsertBatch(batch)[0]);
  ASSERT_TRUE(store->ClaimDue(At(1), 10));
  DeferBobAt(*store, "V1", "google", At(2), At(100));
  Store::Suspension s;
  s.kind = "site";
  s.name = "google";
  s.until = At(100);
  s.created = At(0);
  ASSERT_TRUE(store->Suspend(s));
  auto claimed = store->ClaimDue(At(100), 10);
  ASSERT_TRUE(claimed && claimed->size() == 1u);
  EXPECT_EQ((*claimed)[0].recipients[0].address, "bob@example.net");
}

// Claimed, then found to go to a suspended site (the MX lookup is after the claim): parked
// with that site, due at the latest end in force among its domain's, its site's and
// `not_before`.
TEST_F(StoreTest, ParkWithASiteWaitsForTheSitesSuspension) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  NewMessage m = Message("W1");
  const NewMessage* batch[] = {&m};
  ASSERT_TRUE(store->InsertBatch(batch)[0]);
  ASSERT_TRUE(store->ClaimDue(At(1), 10));
  Store::Suspension s;
  s.kind = "site";
  s.name = "google";
  s.until = At(900);
  s.created = At(0);
  ASSERT_TRUE(store->Suspend(s));
  Store::Suspension ended = s;
  ended.name = "mx.example.com";
  ended.until = At(2);
  ASSERT_TRUE(store->Suspend(ended));
  auto parked = store->Park("W1", {0}, At(2), At(60), "Google");
  ASSERT_TRUE(parked);
  EXPECT_EQ(*parked, std::optional<TimePoint>(At(900)));
  auto info = store->GetMessage("W1");
  ASSERT_TRUE(info && *info);
  EXPECT_EQ((*info)->recipients[0].site, "google");
  EXPECT_EQ((*info)->recipients[0].state, RecipientState::kQueued);
  EXPECT_EQ((*info)->recipients[0].attempts, 0);
  EXPECT_EQ((*info)->recipients[0].next_attempt, At(900));
  // Another site, whose suspension has ended: only not_before counts.
  EXPECT_EQ(*store->Park("W1", {1}, At(3), At(60), "mx.example.com"),
            std::optional<TimePoint>(At(60)));
  EXPECT_EQ(store->GetMessage("W1").value()->recipients[1].site, "mx.example.com");
  // The domain's suspension ends later than the site's: it wins.
  ASSERT_EQ(store->ClaimDue(At(900), 10)->size(), 1u);
  Store::Suspension d;
  d.name = "example.net";
  d.until = At(5000);
  d.created = At(0);
  s.until = At(4000);
  ASSERT_TRUE(store->Suspend(s));
  ASSERT_TRUE(store->Suspend(d));
  EXPECT_EQ(*store->Park("W1", {0}, At(901)), std::optional<TimePoint>(At(5000)));
  // The domain resumed, the claim parks bob by the site it has.
  ASSERT_TRUE(store->Resume("domain", "example.net", At(902)));
  EXPECT_EQ(store->ClaimDue(At(902), 10)->size(), 0u);
  EXPECT_EQ(store->GetMessage("W1").value()->recipients[0].next_attempt, At(4000));
  EXPECT_EQ(store->GetMessage("W1").value()->recipients[0].site, "google");
  // Without a site given, Park too goes by the one the recipient has.
  ended.until = At(3000);
  ASSERT_TRUE(store->Suspend(ended));
  EXPECT_EQ(*store->Park("W1", {1}, At(903)), std::optional<TimePoint>(At(3000)));
}

// A turn under a message_rate is kept exactly, even when the write comes after it: the agent
// knows the turn it booked by it. WakeParked makes mail parked for a connection due at once,
// only while it still waits for that turn.
TEST_F(StoreTest, ParkKeepsAPassedTurnAndWakeParkedWakesOnlyTheParked) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  NewMessage m = Message("P1");
  const NewMessage* batch[] = {&m};
  ASSERT_TRUE(store->InsertBatch(batch)[0]);
  ASSERT_TRUE(store->ClaimDue(At(1), 10));
  const TimePoint turn = At(5) + std::chrono::microseconds(123);
  EXPECT_EQ(*store->Park("P1", {0}, At(9), turn, "mx.example.com"), std::optional<TimePoint>(turn));
  EXPECT_EQ(store->GetMessage("P1").value()->recipients[0].next_attempt, turn);
  EXPECT_EQ(*store->Park("P1", {1}, At(9), At(600), "mx.example.com"),
            std::optional<TimePoint>(At(600)));
  EXPECT_EQ(*store->WakeParked("P1", {1}, At(599), At(10)), 0);  // not the time it waits for
  EXPECT_EQ(*store->WakeParked("P1", {1}, At(600), At(10)), 1);
  EXPECT_EQ(store->GetMessage("P1").value()->recipients[1].next_attempt, At(10));
  EXPECT_EQ(*store->WakeParked("P1", {1}, At(600), At(11)), 0);  // woken already
}

// The table holds what is in force: the daemon reads it every tick, so ended rows go when the
// next suspension is written, and the list leaves them out before that.
TEST_F(StoreTest, EndedSuspensionsAreNotListedAndGoWithTheNextWrite) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  Store::Suspension s;
  s.kind = "site";
  s.created = At(0);
  for (int i = 0; i < 100; ++i) {
    s.name = "mx" + std::to_string(i) + ".example";
    s.until = At(10 + i);
    ASSERT_TRUE(store->Suspend(s));
  }
  EXPECT_EQ(store->ListSuspensions(At(0))->size(), 100u);
  EXPECT_EQ(store->ListSuspensions(At(59))->size(), 50u);  // until At(60) .. At(109)
  s.name = "google";
  s.created = At(100);
  s.until = At(1000);
  ASSERT_TRUE(store->Suspend(s));
  // Written at At(100): the 91 ended by then are gone, even to a list as of At(0).
  const auto left = store->ListSuspensions(At(0));
  ASSERT_TRUE(left);
  EXPECT_EQ(left->size(), 10u);
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
