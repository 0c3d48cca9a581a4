#include "queue/store.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <thread>

#include "queue/committer.hpp"
#include "queue/queue_id.hpp"
#include "queue/store_impl.hpp"
#include "queue/store_test_fixture.hpp"

namespace danerelay::queue {
namespace {

TEST_F(StoreTest, StoresEnvelopeDsnAndContentByteForByte) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  EXPECT_EQ(store->schema_version(), Store::kSchemaVersion);
  std::string content = "Subject: bin\r\n\r\n";
  for (int c = 0; c < 256; ++c) content += static_cast<char>(c);  // NUL and 8-bit bytes too
  const NewMessage m = Message("ID1", content);
  const NewMessage* batch[] = {&m};
  auto results = store->InsertBatch(batch);
  ASSERT_EQ(results.size(), 1u);
  ASSERT_TRUE(results[0]) << results[0].error().message;

  auto info = store->GetMessage("ID1");
  ASSERT_TRUE(info && *info);
  const MessageInfo& got = **info;
  EXPECT_EQ(got.sender, "alice@example.org");
  EXPECT_EQ(got.arrival, m.arrival);
  EXPECT_EQ(got.size, static_cast<std::int64_t>(content.size()));
  EXPECT_EQ(got.protocol, "ESMTPS");
  EXPECT_EQ(got.dsn_ret, DsnRet::kHdrs);
  EXPECT_EQ(got.dsn_envid, "env-1");
  EXPECT_TRUE(got.body_8bitmime);
  ASSERT_EQ(got.recipients.size(), 2u);
  EXPECT_EQ(got.recipients[0].address, "bob@example.net");
  EXPECT_EQ(got.recipients[0].notify, kNotifySuccess | kNotifyFailure);
  EXPECT_EQ(got.recipients[0].orcpt, "rfc822;bob@example.net");
  EXPECT_EQ(got.recipients[0].state, RecipientState::kQueued);
  EXPECT_EQ(got.recipients[1].address, "carol@example.com");

  auto body = store->GetContent("ID1");
  ASSERT_TRUE(body && *body);
  EXPECT_EQ(**body, content);
  auto missing = store->GetMessage("NOPE");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(*missing);
}

TEST_F(StoreTest, KeepsMailAuthAndUtf8Orcpt) {
  // RFC 4954 §5 AUTH= (absent, <> and a mailbox are three different things) and an RFC 6533
  // utf-8 original recipient.
  auto store = OpenRw();
  ASSERT_TRUE(store);
  NewMessage none = Message("N"), empty = Message("E"), box = Message("B");
  empty.mail_auth = "";
  box.mail_auth = "alice@example.org";
  box.recipients[0].orcpt =
      "utf-8;user@b\xC3\xBC"
      "cher.example";
  const NewMessage* batch[] = {&none, &empty, &box};
  for (const auto& r : store->InsertBatch(batch)) ASSERT_TRUE(r) << r.error().message;
  auto n = store->GetMessage("N"), e = store->GetMessage("E"), b = store->GetMessage("B");
  ASSERT_TRUE(n && *n && e && *e && b && *b);
  EXPECT_EQ((*n)->mail_auth, std::nullopt);
  EXPECT_EQ((*e)->mail_auth, std::optional<std::string>(""));
  EXPECT_EQ((*b)->mail_auth, std::optional<std::string>("alice@example.org"));
  EXPECT_EQ((*b)->recipients[0].orcpt,
            "utf-8;user@b\xC3\xBC"
            "cher.example");
}

TEST_F(StoreTest, DuplicateIdFailsAloneInItsBatch) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  const NewMessage a = Message("A"), dup = Message("A"), b = Message("B");
  const NewMessage* batch[] = {&a, &dup, &b};
  auto results = store->InsertBatch(batch);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(results[0]);
  EXPECT_FALSE(results[1]);
  EXPECT_TRUE(results[2]);
  auto list = store->ListMessages({});
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, "A");
  EXPECT_EQ((*list)[0].recipients.size(), 2u);  // the duplicate added no recipients
  EXPECT_EQ((*list)[1].id, "B");
}

TEST_F(StoreTest, ReadOnlyOpenSeesCommitsAndCannotWrite) {
  auto ro_missing = Store::Open(options_, OpenMode::kReadOnly);
  ASSERT_FALSE(ro_missing);
  EXPECT_NE(ro_missing.error().message.find("no queue database"), std::string::npos);

  auto store = OpenRw();
  ASSERT_TRUE(store);
  auto ro = Store::Open(options_, OpenMode::kReadOnly);
  ASSERT_TRUE(ro) << ro.error().message;
  const NewMessage m = Message("X");
  const NewMessage* batch[] = {&m};
  ASSERT_TRUE(store->InsertBatch(batch)[0]);
  auto list = (*ro)->ListMessages({});
  ASSERT_TRUE(list);
  EXPECT_EQ(list->size(), 1u);
  EXPECT_FALSE((*ro)->InsertBatch(batch)[0]);  // read-only really is read-only
}

TEST_F(StoreTest, ReopenKeepsDataAndSchema) {
  {
    auto store = OpenRw();
    ASSERT_TRUE(store);
    const NewMessage m = Message("KEEP");
    const NewMessage* batch[] = {&m};
    ASSERT_TRUE(store->InsertBatch(batch)[0]);
  }
  auto store = OpenRw();
  ASSERT_TRUE(store);
  EXPECT_EQ(store->schema_version(), Store::kSchemaVersion);
  auto info = store->GetMessage("KEEP");
  ASSERT_TRUE(info && *info);
}

TEST_F(StoreTest, CommitterGroupsConcurrentSubmissions) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  constexpr int kThreads = 50, kPerThread = 20;
  std::atomic<int> ok{0}, failed{0};
  QueueIdGenerator ids;
  Committer::Stats stats;
  {
    Committer committer(std::move(store));
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < kPerThread; ++i) {
          std::promise<bool> done;
          committer.Submit(Message(ids.Next(Clock::now())), [&](tl::expected<void, StoreError> r) {
            done.set_value(r.has_value());
          });
          (done.get_future().get() ? ok : failed)++;
        }
      });
    }
    for (auto& th : threads) th.join();
    stats = committer.stats();
  }
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(stats.messages, static_cast<std::uint64_t>(kThreads * kPerThread));
  // With 50 waiting submitters, commits must be shared: far fewer transactions than messages.
  EXPECT_LT(stats.transactions * 2, stats.messages);
  auto ro = Store::Open(options_, OpenMode::kReadOnly);
  ASSERT_TRUE(ro);
  auto list = (*ro)->ListMessages({});
  ASSERT_TRUE(list);
  EXPECT_EQ(list->size(), static_cast<size_t>(kThreads * kPerThread));
}

TEST_F(StoreTest, DeliverySideClaimsRecordsAndCompletes) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  const NewMessage m = Message("D1");
  const NewMessage* batch[] = {&m};
  ASSERT_TRUE(store->InsertBatch(batch)[0]);
  const TimePoint now = m.arrival + std::chrono::seconds(1);

  auto due = store->ClaimDue(now, 10);
  ASSERT_TRUE(due) << due.error().message;
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].recipients.size(), 2u);
  EXPECT_EQ((*due)[0].sender, "alice@example.org");
  // Claimed recipients are not handed out twice.
  auto again = store->ClaimDue(now, 10);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->empty());

  const TimePoint later = now + std::chrono::minutes(5);
  AttemptRecord a;
  a.recipient_index = 0;
  a.time = now;
  a.mx_host = "mx.example.net";
  a.ip = "192.0.2.1";
  a.dnssec_mx = "secure";
  a.tls_verdict = "Verified";
  a.tlsa_record = "3 1 1 AB";
  a.reply = "250 2.0.0 Ok";
  a.status = "2.0.0";
  ASSERT_TRUE(store->RecordDelivery(
      "D1",
      {{0, RecipientState::kDelivered, std::nullopt, "2.0.0", "250 2.0.0 Ok", "mx.example.net"},
       {1, RecipientState::kDeferred, later, "4.7.5", "Server certificate not verified", ""}},
      {a}, {}, now));
  auto info = store->GetMessage("D1");
  ASSERT_TRUE(info && *info);
  EXPECT_EQ((*info)->recipients[0].state, RecipientState::kDelivered);
  EXPECT_EQ((*info)->recipients[0].attempts, 1);
  EXPECT_EQ((*info)->recipients[1].state, RecipientState::kDeferred);
  EXPECT_EQ((*info)->recipients[1].last_status, "4.7.5");
  EXPECT_EQ((*info)->recipients[1].next_attempt, later);
  auto attempts = store->GetAttempts("D1");
  ASSERT_TRUE(attempts);
  ASSERT_EQ(attempts->size(), 1u);
  EXPECT_EQ((*attempts)[0].tlsa_record, "3 1 1 AB");
  EXPECT_EQ(store->NextDue().value(), later);

  // Not yet due; then due again, then final: the message is complete and leaves the list.
  EXPECT_TRUE(store->ClaimDue(now, 10)->empty());
  auto retry = store->ClaimDue(later, 10);
  ASSERT_EQ(retry->size(), 1u);
  ASSERT_EQ((*retry)[0].recipients.size(), 1u);
  EXPECT_EQ((*retry)[0].recipients[0].index, 1);
  ASSERT_TRUE(store->RecordDelivery(
      "D1", {{1, RecipientState::kFailed, std::nullopt, "5.1.1", "550 5.1.1 no such user", "mx"}},
      {}, {}, later));
  EXPECT_TRUE(store->ListMessages({})->empty());
  EXPECT_EQ(store->ListMessages(Select([](auto& s) { s.include_completed = true; }))->size(), 1u);
  EXPECT_FALSE(store->NextDue().value());
  EXPECT_EQ(store->PurgeCompleted(later).value(), 0);  // completed at `later`, not before
  EXPECT_EQ(store->PurgeCompleted(later + std::chrono::seconds(1)).value(), 1);
  EXPECT_FALSE(*store->GetMessage("D1"));
  EXPECT_TRUE(store->GetAttempts("D1")->empty());  // attempts go with their message
}

// The typed TLS-RPT facts of an attempt come back as written, and the attempts of a report
// mail (RFC 8460 §5.3) are not among a domain's sessions.
TEST_F(StoreTest, SessionsKeepTheirTypedFactsAndLeaveReportMailsOut) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  NewMessage report = Message("R2");
  report.tls_report = true;
  const NewMessage m = Message("M2");
  const NewMessage* batch[] = {&m, &report};
  ASSERT_TRUE(store->InsertBatch(batch)[0]);
  EXPECT_TRUE((*store->GetMessage("R2"))->tls_report);
  EXPECT_FALSE((*store->GetMessage("M2"))->tls_report);
  const TimePoint day = TimePoint(std::chrono::seconds(1796169600));
  AttemptRecord a;
  a.time = day + std::chrono::hours(1);
  a.mx_host = "mx.example.net";
  a.tls_verdict = "Verified";
  a.session = 4242;
  a.policy_type = "tlsa";
  a.tlsa_policy = {"3 1 1 AB", "2 0 1 CD"};
  a.sts_policy_id = "";
  a.sts_problem = "sts-policy-fetch-error";
  ASSERT_TRUE(store->RecordDelivery("M2", {}, {a}, {}, a.time));
  ASSERT_TRUE(store->RecordDelivery("R2", {}, {a}, {}, a.time));
  auto got = store->GetDomainSessions("example.net", day, day + std::chrono::hours(24));
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 1u);  // M2's; R2's is a report's own session
  EXPECT_EQ((*got)[0].session, 4242);
  EXPECT_EQ((*got)[0].policy_type, "tlsa");
  EXPECT_EQ((*got)[0].tlsa_policy, (std::vector<std::string>{"3 1 1 AB", "2 0 1 CD"}));
  EXPECT_EQ((*got)[0].sts_problem, "sts-policy-fetch-error");
  EXPECT_EQ(store->GetAttempts("R2")->size(), 1u);  // still recorded, for `queue show`
  // A day on which only the report mail had sessions: no domain to report on.
  const TimePoint next = day + std::chrono::hours(24);
  a.time = next + std::chrono::hours(1);
  ASSERT_TRUE(store->RecordDelivery("R2", {}, {a}, {}, a.time));
  EXPECT_TRUE(store->GetSessionDomains(next, next + std::chrono::hours(24))->empty());
  EXPECT_EQ(store->GetSessionDomains(day, next).value(), std::vector<std::string>{"example.net"});
}

// Schema 14 gives the attempts recorded before it their typed TLS-RPT facts, once, from the
// texts they hold; schema 13 gives them no session (0: counted one each).
TEST_F(StoreTest, MigrationTypesTheOldAttempts) {
  std::filesystem::create_directories(options_.path);
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(Store::DatabasePath(options_).c_str(), &raw), SQLITE_OK);
    DbPtr db(raw);
    for (int v = 0; v < 12; ++v) {
      ASSERT_EQ(sqlite3_exec(db.get(), kMigrations[v], nullptr, nullptr, nullptr), SQLITE_OK) << v;
    }
    const char* old = R"sql(
INSERT INTO messages (id, arrival_us, sender, size, client_address, client_helo, protocol,
  body_8bitmime, smtputf8, dsn_ret, dsn_envid) VALUES ('OLD', 0, '', 0, '', '', '', 0, 0, '', '');
INSERT INTO recipients (message_id, idx, address, state, notify, orcpt, domain)
  VALUES ('OLD', 0, 'a@x.example', 'delivered', 0, '', 'x.example');
INSERT INTO attempts (message_id, recipient_idx, time_us, mx_host, ip, dnssec_mx, dnssec_address,
  dnssec_tlsa, tls_verdict, tlsa_record, reply, status, mta_sts) VALUES
  ('OLD', 0, 1, 'mx', '', '', '', 'secure: 3 1 1 AB, 2 0 1 CD', 'Verified', '', '', '', ''),
  ('OLD', 0, 2, 'mx', '', '', '', 'secure: 3 1 1 AB', 'Verified', '', '', '',
   'enforce id=7 (cached), DANE applies'),
  ('OLD', 0, 3, 'mx', '', '', '', '', 'Trusted', '', '', '', 'testing id=20261201'),
  ('OLD', 0, 4, 'mx', '', '', '', '', 'Anonymous', '', '', '',
   'no policy: sts-webpki-invalid: https://mta-sts.x.example/: bad'),
  ('OLD', 0, 5, 'mx', '', '', '', 'insecure', 'Anonymous', '', '', '', '');
PRAGMA user_version = 12;
)sql";
    ASSERT_EQ(sqlite3_exec(db.get(), old, nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db.get());
  }
  auto store = OpenRw();
  ASSERT_TRUE(store);
  auto got = store->GetAttempts("OLD");
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 5u);
  const auto& a = *got;
  EXPECT_EQ(a[0].session, 0);
  EXPECT_EQ(a[0].policy_type, "tlsa");
  EXPECT_EQ(a[0].tlsa_policy, (std::vector<std::string>{"3 1 1 AB", "2 0 1 CD"}));
  EXPECT_EQ(a[1].policy_type, "tlsa");  // DANE applied, the MTA-STS policy set aside
  EXPECT_EQ(a[2].policy_type, "sts");
  EXPECT_EQ(a[2].sts_policy_id, "20261201");
  EXPECT_EQ(a[2].sts_problem, "");
  EXPECT_EQ(a[3].policy_type, "sts");
  EXPECT_EQ(a[3].sts_policy_id, "");
  EXPECT_EQ(a[3].sts_problem, "sts-webpki-invalid");
  EXPECT_EQ(a[4].policy_type, "no-policy-found");
  EXPECT_TRUE(a[4].tlsa_policy.empty());
}

TEST_F(StoreTest, TlsReportsAreRecordedWithTheirMailInOneTransaction) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  const NewMessage m = Message("T1");  // to bob@example.net and a second recipient
  const NewMessage* batch[] = {&m};
  ASSERT_TRUE(store->InsertBatch(batch)[0]);
  const TimePoint day = TimePoint(std::chrono::seconds(1796169600));
  AttemptRecord a;
  a.recipient_index = 0;
  a.time = day + std::chrono::hours(3);
  a.mx_host = "mx.example.net";
  a.tls_verdict = "Verified";
  a.status = "2.0.0";
  ASSERT_TRUE(store->RecordDelivery("T1", {}, {a}, {}, a.time));
  EXPECT_EQ(store->GetSessionDomains(day, day + std::chrono::hours(24)).value(),
            std::vector<std::string>{"example.net"});
  EXPECT_TRUE(store->GetSessionDomains(day + std::chrono::hours(24), day + std::chrono::hours(48))
                  ->empty());

  EXPECT_TRUE(store->GetTlsReports(day)->empty());
  NewMessage report = Message("R1");
  report.recipients = {{"tls@example.net", kNotifyNever, ""}};
  Store::TlsReportRecord r{
      "example.net",      day, "2026-12-02_example.net@h", day, "mailto:tls@example.net",
      "mail queued as R1"};
  ASSERT_TRUE(store->PutTlsReport(r, &report));
  auto got = store->GetTlsReports(day);
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].report_id, "2026-12-02_example.net@h");
  EXPECT_EQ((*got)[0].outcome, "mail queued as R1");
  EXPECT_TRUE(*store->GetMessage("R1"));
  // An update replaces the outcome; the message is not queued twice.
  r.outcome = "mail queued as R1; posted to https://r.example:443/";
  ASSERT_TRUE(store->PutTlsReport(r));
  EXPECT_EQ(store->GetTlsReports(day)->at(0).outcome, r.outcome);
  // A report whose mail cannot be stored (the ID is taken) is not recorded either.
  Store::TlsReportRecord other{"example.org", day, "x", day, "mailto:a@example.org", "queued"};
  EXPECT_FALSE(store->PutTlsReport(other, &report));
  EXPECT_EQ(store->GetTlsReports(day)->size(), 1u);
  // Old records go; the day itself is kept by a purge up to its start.
  ASSERT_TRUE(store->PurgeTlsReports(day));
  EXPECT_EQ(store->GetTlsReports(day)->size(), 1u);
  ASSERT_TRUE(store->PurgeTlsReports(day + std::chrono::seconds(1)));
  EXPECT_TRUE(store->GetTlsReports(day)->empty());
}

TEST_F(StoreTest, TlsReportPostsArePendingUntilTakenOrGivenUp) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  const TimePoint day = TimePoint(std::chrono::seconds(1796169600));
  const TimePoint made = day + std::chrono::hours(24);
  Store::TlsReportRecord r{
      "example.net", day, "id1", made, "https://a.example/ https://b.example/", ""};
  Store::TlsReportPost a;
  a.domain = "example.net";
  a.day = day;
  a.url = "https://a.example:443/";
  a.report_id = "id1";
  a.payload = std::string("gz\0a", 4);
  a.next = made;
  Store::TlsReportPost b = a;
  b.url = "https://b.example:443/";
  b.payload = "gz-b";
  ASSERT_TRUE(store->PutTlsReport(r, nullptr, {a, b}));
  EXPECT_EQ(store->NextTlsReportPost().value(), made);
  EXPECT_TRUE(store->GetDueTlsReportPosts(made - std::chrono::seconds(1))->empty());
  auto due = store->GetDueTlsReportPosts(made);
  ASSERT_TRUE(due);
  ASSERT_EQ(due->size(), 2u);
  EXPECT_EQ((*due)[0].payload, std::string("gz\0a", 4));  // a blob, NUL included
  EXPECT_EQ((*due)[0].state, "pending");
  // a: refused, tried again in 30 s; b: taken.
  a.tries = 1;
  a.next = made + std::chrono::seconds(30);
  a.last_error = "HTTP status 503";
  ASSERT_TRUE(store->UpdateTlsReportPost(a));
  b.tries = 1;
  b.state = "posted";
  ASSERT_TRUE(store->UpdateTlsReportPost(b));
  EXPECT_EQ(store->NextTlsReportPost().value(), made + std::chrono::seconds(30));
  EXPECT_TRUE(store->GetDueTlsReportPosts(made + std::chrono::seconds(29))->empty());
  due = store->GetDueTlsReportPosts(made + std::chrono::seconds(30));
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].url, a.url);
  EXPECT_EQ((*due)[0].tries, 1);
  EXPECT_EQ((*due)[0].last_error, "HTTP status 503");
  EXPECT_EQ((*due)[0].payload, std::string("gz\0a", 4));  // kept while pending
  a.state = "failed";
  ASSERT_TRUE(store->UpdateTlsReportPost(a));
  EXPECT_FALSE(store->NextTlsReportPost().value());
  auto all = store->GetTlsReportPosts(day);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].state, "failed");
  EXPECT_EQ((*all)[1].state, "posted");
  EXPECT_TRUE(store->GetTlsReportPosts(made)->empty());
  // Replacing the record (the outcome) leaves the posts alone; a purge takes both.
  r.outcome = "x";
  ASSERT_TRUE(store->PutTlsReport(r));
  EXPECT_EQ(store->GetTlsReportPosts(day)->size(), 2u);
  ASSERT_TRUE(store->PurgeTlsReports(day + std::chrono::seconds(1)));
  EXPECT_TRUE(store->GetTlsReportPosts(day)->empty());
  EXPECT_TRUE(store->GetTlsReports(day)->empty());
}

// After a backlog has gone, its pages are given back a bounded step at a time, down to a
// reserve; a queue created now is in incremental auto-vacuum mode.
TEST_F(StoreTest, FreeSpaceOfADrainedBacklogGoesBackToTheFileSystem) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  ASSERT_TRUE(InsertBacklog(*store));
  EXPECT_TRUE(store->GetSpace()->incremental);
  EXPECT_EQ(store->ReturnFreeSpace(1000)->pages, 0);  // nothing free yet
  ASSERT_TRUE(store->Delete(Store::Selection{}));
  const Store::Space drained = store->GetSpace().value();
  EXPECT_GT(drained.free_pages * 10, drained.pages * 9);  // ~38 MB, nearly all free
  std::int64_t returned = 0;
  for (int step = 0; step < 100; ++step) {
    const auto r = store->ReturnFreeSpace(1000);
    ASSERT_TRUE(r) << r.error().message;
    if (r->pages == 0) break;
    EXPECT_LE(r->pages, 1000);
    EXPECT_EQ(r->bytes, r->pages * drained.page_size);
    returned += r->pages;
  }
  const Store::Space end = store->GetSpace().value();
  // The file shrank by what was given back (and the pointer-map pages that went with it).
  EXPECT_GE(drained.pages - end.pages, returned);
  EXPECT_LE(drained.pages - end.pages, returned + returned / 100);
  EXPECT_LT(end.pages, drained.pages / 3);
  EXPECT_LT(end.free_pages, Store::kMinFreePages);  // the reserve stays for new mail
  // Mail goes in and out as before.
  const NewMessage after = Message("A1");
  const NewMessage* one[] = {&after};
  ASSERT_TRUE(store->InsertBatch(one)[0]);
  EXPECT_EQ(store->GetContent("A1").value(), after.content);
}

TEST_F(StoreTest, ReleaseAttemptingAfterACrash) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  const NewMessage m = Message("R1");
  const NewMessage* batch[] = {&m};
  ASSERT_TRUE(store->InsertBatch(batch)[0]);
  ASSERT_EQ(store->ClaimDue(m.arrival, 10)->size(), 1u);
  EXPECT_EQ(store->ReleaseAttempting(m.arrival).value(), 2);
  auto info = store->GetMessage("R1");
  EXPECT_EQ((*info)->recipients[0].state, RecipientState::kDeferred);
  EXPECT_EQ(store->ClaimDue(m.arrival, 10)->size(), 1u);
}

// Once DNSSEC validation works again only the recipients deferred because it did not become due;
// one deferred for another reason keeps its backoff.
TEST_F(StoreTest, MakeDeferredDueTakesOnlyThoseWithTheCause) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  const NewMessage m = Message("V1");
  const NewMessage* batch[] = {&m};
  ASSERT_TRUE(store->InsertBatch(batch)[0]);
  const TimePoint now = m.arrival;
  const TimePoint later = now + std::chrono::hours(1);
  ASSERT_EQ(store->ClaimDue(now, 10)->size(), 1u);
  RecipientUpdate resolver{0, RecipientState::kDeferred, later, "4.4.3", "any words", ""};
  resolver.cause = Cause::kResolverNotValidating;
  // The same status, and the words of the first: its cause is what counts.
  RecipientUpdate dns{1, RecipientState::kDeferred, later, "4.4.3", "any words", ""};
  dns.cause = Cause::kDns;
  ASSERT_TRUE(store->RecordDelivery("V1", {resolver, dns}, {}, {}, now));
  EXPECT_TRUE(store->ClaimDue(now, 10)->empty());
  EXPECT_EQ(store->MakeDeferredDue(Cause::kResolverNotValidating, now).value(), 1);
  auto due = store->ClaimDue(now, 10);
  ASSERT_EQ(due->size(), 1u);
  ASSERT_EQ((*due)[0].recipients.size(), 1u);
  EXPECT_EQ((*due)[0].recipients[0].index, 0);
  // Nothing left to make due: a second call finds none.
  EXPECT_EQ(store->MakeDeferredDue(Cause::kResolverNotValidating, now).value(), 0);
}

// A duplicate ID fails the same way each time: an outcome write that fails like this is not
// tried again; a full disk may pass later.
TEST_F(StoreTest, ErrorsSayWhetherTryingAgainMayHelp) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  const NewMessage a = Message("A"), dup = Message("A");
  const NewMessage* batch[] = {&a, &dup};
  auto results = store->InsertBatch(batch);
  ASSERT_FALSE(results[1]);
  EXPECT_FALSE(IsTransient(results[1].error())) << results[1].error().message;
  EXPECT_FALSE(IsDiskFull(results[1].error()));
  EXPECT_TRUE(IsTransient(StoreError{"database or disk is full", 13}));  // SQLITE_FULL
  EXPECT_TRUE(IsDiskFull(StoreError{"database or disk is full", 13}));
  EXPECT_TRUE(IsTransient(StoreError{"database is locked", 5}));                  // SQLITE_BUSY
  EXPECT_FALSE(IsTransient(StoreError{"database disk image is malformed", 11}));  // CORRUPT
}

// What an outcome may still write: the operator's bounce finishes recipients in delivery (so
// their outcome is dropped), a deletion leaves nothing; expiry leaves them to their outcome.
TEST_F(StoreTest, OperatorDecidesForRecipientsInDelivery) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  const NewMessage a = Message("A"), b = Message("B");
  const NewMessage* batch[] = {&a, &b};
  for (const auto& r : store->InsertBatch(batch)) ASSERT_TRUE(r);
  ASSERT_EQ(store->ClaimDue(a.arrival, 10)->size(), 2u);
  EXPECT_EQ(*store->AttemptingRecipients("A").value(), std::vector<int>({0, 1}));

  Store::Selection expiry;
  expiry.ids = {"A"};
  expiry.skip_in_flight = true;
  const auto no_notice = [](const MessageInfo&, const std::string&,
                            const std::vector<StoredRecipient>&) -> std::optional<NewMessage> {
    return std::nullopt;
  };
  EXPECT_EQ(
      store->Finish(expiry, RecipientState::kExpired, "", "", Cause::kNone, a.arrival, no_notice)
          ->recipients,
      0);
  Store::Selection bounce;
  bounce.ids = {"A"};
  auto bounced = store->Finish(bounce, RecipientState::kFailed, "5.0.0", "returned",
                               Cause::kOperator, a.arrival, no_notice);
  ASSERT_TRUE(bounced) << bounced.error().message;
  EXPECT_EQ(bounced->recipients, 2);
  EXPECT_EQ(*store->AttemptingRecipients("A").value(), std::vector<int>());

  Store::Selection del;
  del.ids = {"B"};
  ASSERT_TRUE(store->Delete(del));
  EXPECT_FALSE(store->AttemptingRecipients("B").value().has_value());  // gone
}

// `queue list` selects as the actions do: each message with only the recipients that the
// filters select; its --domain picks whole messages; completed ones only when asked for.
TEST_F(StoreTest, ListShowsTheSelectedRecipientsOfEachMessage) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  NewMessage a = Message("A"), b = Message("B"), c = Message("C");
  b.sender = "";
  b.arrival += std::chrono::hours(1);
  b.recipients = {{"dave@Example.NET", kNotifyNone, ""}};
  const NewMessage* batch[] = {&a, &b, &c};
  for (const auto& r : store->InsertBatch(batch)) ASSERT_TRUE(r);
  ASSERT_TRUE(store->Hold(Select([](auto& s) {
    s.ids = {"A"};
    s.domain = "example.com";
  })));
  const auto no_notice = [](const MessageInfo&, const std::string&,
                            const std::vector<StoredRecipient>&) -> std::optional<NewMessage> {
    return std::nullopt;
  };
  ASSERT_TRUE(store->Finish(Select([](auto& s) { s.ids = {"C"}; }), RecipientState::kFailed,
                            "5.0.0", "returned", Cause::kOperator, a.arrival, no_notice));
  // Each message as "ID:recipient,recipient".
  using Lines = std::vector<std::string>;
  const auto list = [&](const std::function<void(Store::Selection&)>& set) {
    Lines out;
    auto listed = store->ListMessages(Select(set));
    EXPECT_TRUE(listed) << listed.error().message;
    for (const auto& m : listed.value_or(std::vector<MessageInfo>{})) {
      std::string line = m.id + ":";
      for (const auto& r : m.recipients)
        line += r.address + (&r == &m.recipients.back() ? "" : ",");
      out.push_back(line);
    }
    return out;
  };
  const std::string a_both = "A:bob@example.net,carol@example.com";
  const std::string b_dave = "B:dave@Example.NET";
  EXPECT_EQ(list([](auto&) {}), Lines({a_both, b_dave}));
  EXPECT_EQ(list([](auto& s) { s.include_completed = true; }),
            Lines({a_both, b_dave, "C:bob@example.net,carol@example.com"}));
  EXPECT_EQ(list([](auto& s) {
              s.domain = "EXAMPLE.com";
              s.domain_picks_messages = true;
            }),
            Lines({a_both}));
  EXPECT_EQ(list([](auto& s) { s.domain = "example.com"; }), Lines({"A:carol@example.com"}));
  // The message has a recipient in the domain; the state picks among all its recipients.
  EXPECT_EQ(list([](auto& s) {
              s.domain = "example.com";
              s.domain_picks_messages = true;
              s.state = RecipientState::kQueued;
            }),
            Lines({"A:bob@example.net"}));
  EXPECT_EQ(list([](auto& s) { s.state = RecipientState::kHeld; }), Lines({"A:carol@example.com"}));
  EXPECT_EQ(list([](auto& s) { s.sender = "<>"; }), Lines({b_dave}));
  EXPECT_EQ(list([](auto& s) { s.sender = "alice@example.org"; }), Lines({a_both}));
  EXPECT_EQ(list([](auto& s) { s.recipient = "carol@example.com"; }),
            Lines({"A:carol@example.com"}));
  EXPECT_EQ(list([](auto& s) { s.recipient = "Carol@example.com"; }), Lines());  // as stored
  EXPECT_EQ(list([&](auto& s) { s.arrived_before = b.arrival; }), Lines({a_both}));
  EXPECT_EQ(list([](auto& s) { s.ids = {"B", "C"}; }), Lines({b_dave}));
  EXPECT_EQ(list([](auto& s) {
              s.ids = {"B", "C"};
              s.state = RecipientState::kFailed;
              s.include_completed = true;
            }),
            Lines({"C:bob@example.net,carol@example.com"}));
}

// The command line's actions go into the operator log with the change (one transaction); the
// daemon takes them out once, oldest first, and an action without `by` writes nothing.
TEST_F(StoreTest, OperatorActionsAreLoggedOnceWithTheChange) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  const NewMessage a = Message("A"), b = Message("B");
  const NewMessage* batch[] = {&a, &b};
  for (const auto& r : store->InsertBatch(batch)) ASSERT_TRUE(r) << r.error().message;
  Store::Selection hold;
  hold.ids = {"A"};
  hold.by = Store::Selection::Operator{"root", "hold"};
  ASSERT_TRUE(store->Hold(hold));
  Store::Selection del;
  del.ids = {"B"};
  del.by = Store::Selection::Operator{"root (sudo by alice)", "delete"};
  ASSERT_TRUE(store->Delete(del));
  Store::Selection quiet;
  quiet.ids = {"A"};
  ASSERT_TRUE(store->Release(quiet, TimePoint(std::chrono::seconds(1'790'000'001))));

  auto taken = store->TakeOperatorLog();
  ASSERT_TRUE(taken) << taken.error().message;
  ASSERT_EQ(taken->size(), 2u);
  EXPECT_EQ((*taken)[0].message_id, "A");
  EXPECT_EQ((*taken)[0].action, "hold");
  EXPECT_EQ((*taken)[0].user, "root");
  EXPECT_EQ((*taken)[1].message_id, "B");
  EXPECT_EQ((*taken)[1].action, "delete");
  EXPECT_EQ((*taken)[1].user, "root (sudo by alice)");
  EXPECT_TRUE(store->TakeOperatorLog().value().empty());  // taken once
}

// The operator's reserve for a full disk: made at the daemon's open, given back, made again.
TEST_F(StoreTest, ReserveIsKeptGivenBackAndMadeAgain) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  const auto reserve = Store::ReservePath(options_);
  ASSERT_TRUE(std::filesystem::exists(reserve));
  EXPECT_GE(static_cast<std::int64_t>(std::filesystem::file_size(reserve)), Store::kReserveBytes);
  EXPECT_FALSE(store->KeepReserve());  // there already
  EXPECT_TRUE(store->GiveBackReserve());
  EXPECT_FALSE(std::filesystem::exists(reserve));
  EXPECT_FALSE(store->GiveBackReserve());  // nothing left to give
  EXPECT_TRUE(store->KeepReserve());
  EXPECT_GE(static_cast<std::int64_t>(std::filesystem::file_size(reserve)), Store::kReserveBytes);
}

}  // namespace
}  // namespace danerelay::queue

namespace danerelay::queue {
namespace {

// Postfix's qshape: pending recipients per destination by the age of their message.
TEST_F(StoreTest, ShapeCountsPendingRecipientsByAge) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  const TimePoint now = TimePoint(std::chrono::seconds(1'790'000'000));
  std::vector<NewMessage> ms;
  for (int minutes : {0, 4, 7, 30, 30, 2000}) {
    NewMessage m = Message("S" + std::to_string(ms.size()));
    m.arrival = now - std::chrono::minutes(minutes);
    ms.push_back(std::move(m));
  }
  std::vector<const NewMessage*> batch;
  for (const auto& m : ms) batch.push_back(&m);
  for (const auto& r : store->InsertBatch(batch)) ASSERT_TRUE(r);
  auto shape = store->GetShape({"example.net", "example.com", "nowhere.example"}, now);
  ASSERT_TRUE(shape) << shape.error().message;
  const std::array<int, Store::kShapeBuckets> expected = {2, 1, 0, 2, 0, 0, 0, 0, 0, 1};
  EXPECT_EQ((*shape)[0], expected);  // bob@example.net in every message
  EXPECT_EQ((*shape)[1], expected);  // carol@example.com too
  EXPECT_EQ((*shape)[2], (std::array<int, Store::kShapeBuckets>{}));
}

}  // namespace
}  // namespace danerelay::queue
