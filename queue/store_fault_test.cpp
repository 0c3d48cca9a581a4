// The store under faults, injected with SQLite's own means (a trigger that rolls the
// transaction back, a progress handler that interrupts a statement), and its migration.
#include <gtest/gtest.h>

#include "queue/store_impl.hpp"
#include "queue/store_test_fixture.hpp"

namespace danerelay::queue {

struct StoreTestAccess {
  static sqlite3* Db(Store& s) { return s.impl_->db.get(); }
};

namespace {

void Sql(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << err;
}

int Count(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr), SQLITE_OK);
  EXPECT_EQ(sqlite3_step(s), SQLITE_ROW);
  const int n = sqlite3_column_int(s, 0);
  sqlite3_finalize(s);
  return n;
}

// A statement that makes SQLite roll the whole transaction back (as SQLITE_FULL can) must not
// leave the rest of the batch running in autocommit: there, each later message was committed
// on its own while the final COMMIT failed and every client got 451, and their retries
// duplicated the mail. Now the batch is redone without the failed message.
TEST_F(StoreTest, BatchSurvivesAStatementThatRollsTheTransactionBack) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  Sql(StoreTestAccess::Db(*store),
      "CREATE TEMP TRIGGER fail_bad BEFORE INSERT ON messages WHEN NEW.id = 'BAD' "
      "BEGIN SELECT RAISE(ROLLBACK, 'injected fault'); END;");
  const NewMessage a = Message("A"), bad = Message("BAD"), c = Message("C");
  const NewMessage* batch[] = {&a, &bad, &c};
  int job_runs = 0;
  const Store::WriteJob job = [&](Store& s) -> tl::expected<void, StoreError> {
    ++job_runs;
    return s.ReleaseAttempting(a.arrival).map([](int) {});
  };
  const Store::WriteJob* jobs[] = {&job};
  auto results = store->CommitBatch(batch, jobs);
  ASSERT_EQ(results.messages.size(), 3u);
  EXPECT_TRUE(results.messages[0]) << results.messages[0].error().message;
  EXPECT_FALSE(results.messages[1]);
  EXPECT_TRUE(results.messages[2]) << results.messages[2].error().message;
  EXPECT_TRUE(results.jobs[0]);
  EXPECT_GE(job_runs, 1);
  // What was reported is what is stored: A and C once, BAD not at all.
  sqlite3* db = StoreTestAccess::Db(*store);
  EXPECT_EQ(Count(db, "SELECT COUNT(*) FROM messages"), 2);
  EXPECT_EQ(Count(db, "SELECT COUNT(*) FROM messages WHERE id = 'BAD'"), 0);
  EXPECT_EQ(Count(db, "SELECT COUNT(*) FROM contents"), 2);
  EXPECT_TRUE(sqlite3_get_autocommit(db));
  // The connection is usable afterwards.
  const NewMessage d = Message("D");
  const NewMessage* next[] = {&d};
  EXPECT_TRUE(store->InsertBatch(next)[0]);
}

// A read that fails half-way is an error, never "no more rows": ClaimDue used to claim (and
// deliver) a partial set when its scan was interrupted.
TEST_F(StoreTest, InterruptedClaimIsAnErrorAndClaimsNothing) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  std::vector<NewMessage> messages;
  for (int i = 0; i < 50; ++i) messages.push_back(Message("M" + std::to_string(100 + i)));
  std::vector<const NewMessage*> batch;
  for (const auto& m : messages) batch.push_back(&m);
  for (const auto& r : store->InsertBatch(batch)) ASSERT_TRUE(r);
  sqlite3* db = StoreTestAccess::Db(*store);
  // Interrupt one statement once, after `at` progress callbacks, at points spread over the
  // claim: each time the claim is either an error that claimed nothing or complete.
  static int steps, at;
  int errors = 0;
  for (at = 1; at <= 40; ++at) {
    steps = 0;
    sqlite3_progress_handler(
        db, 20, [](void*) { return ++steps == at ? 1 : 0; }, nullptr);
    auto due = store->ClaimDue(messages[0].arrival, 50);
    sqlite3_progress_handler(db, 0, nullptr, nullptr);
    const int claimed = Count(db, "SELECT COUNT(*) FROM recipients WHERE state = 'attempting'");
    if (!due) {
      ++errors;
      EXPECT_EQ(claimed, 0) << "interrupted at " << at << ": " << due.error().message;
    } else {
      EXPECT_EQ(due->size(), 50u) << "interrupted at " << at;
      EXPECT_EQ(claimed, 100) << "interrupted at " << at;
    }
    ASSERT_TRUE(store->ReleaseAttempting(messages[0].arrival));
  }
  EXPECT_GT(errors, 0);
}

// The claim takes the earliest due first and is bounded by its limit; a domain lists through
// its own index.
TEST_F(StoreTest, ClaimsEarliestDueAndListsByDomain) {
  auto store = OpenRw();
  ASSERT_TRUE(store);
  NewMessage late = Message("L1"), early = Message("E1");
  late.arrival += std::chrono::seconds(10);
  early.recipients = {{"Dave@Other.Example", kNotifyNone, ""}};
  const NewMessage* batch[] = {&late, &early};
  for (const auto& r : store->InsertBatch(batch)) ASSERT_TRUE(r);
  auto first = store->ClaimDue(late.arrival, 1);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->size(), 1u);
  EXPECT_EQ((*first)[0].id, "E1");
  // As `queue list --domain`: the messages with a recipient there.
  const auto by_domain = [&](std::string domain) {
    return store->ListMessages(Select([&](auto& s) {
      s.domain = domain;
      s.domain_picks_messages = true;
    }));
  };
  auto listed = by_domain("OTHER.example");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id, "E1");
  EXPECT_EQ(by_domain("example.net")->size(), 1u);
  EXPECT_TRUE(by_domain("nowhere.example")->empty());
  EXPECT_EQ(store->OldestPending().value(), early.arrival);
}

// A queue written by the first schema (content inside the messages row) is migrated in place.
TEST_F(StoreTest, MigratesTheFirstSchema) {
  std::filesystem::create_directories(options_.path);
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(Store::DatabasePath(options_).c_str(), &raw), SQLITE_OK);
  Sql(raw, std::string(kMigrations[0]) + "PRAGMA user_version = 1;");
  Sql(raw,
      "INSERT INTO messages VALUES ('OLD1', 1790000000000000, 'a@example.org', 9, '127.0.0.1', "
      "'h', 'ESMTP', 0, 0, '', '', X'48690D0A0D0A6869', NULL);"
      "INSERT INTO recipients (message_id, idx, address, state, notify, orcpt, next_attempt_us) "
      "VALUES ('OLD1', 0, 'b@Example.NET', 'deferred', 0, '', 1790000000000000);");
  sqlite3_close(raw);
  // The command line neither reads nor changes an old schema: only the daemon migrates.
  for (auto mode : {OpenMode::kReadOnly, OpenMode::kReadWriteExisting}) {
    auto cli = Store::Open(options_, mode);
    ASSERT_FALSE(cli);
    EXPECT_NE(cli.error().message.find("start this version of danerelayd once"), std::string::npos)
        << cli.error().message;
  }
  auto store = OpenRw();
  ASSERT_TRUE(store);
  EXPECT_EQ(store->schema_version(), Store::kSchemaVersion);
  EXPECT_EQ(store->GetContent("OLD1").value(), std::optional<std::string>("Hi\r\n\r\nhi"));
  EXPECT_EQ(store->ListMessages(Select([](auto& s) { s.domain = "example.net"; }))->size(), 1u);
  EXPECT_EQ(store->ClaimDue(TimePoint::max(), 10)->size(), 1u);
  // A queue from before schema 7 has no incremental auto-vacuum: its free space stays until
  // `danerelay queue compact` rewrites it, which keeps every row.
  EXPECT_FALSE(store->GetSpace()->incremental);
  EXPECT_EQ(store->ReturnFreeSpace(100)->pages, 0);
  ASSERT_TRUE(store->Compact());
  EXPECT_TRUE(store->GetSpace()->incremental);
  EXPECT_EQ(store->GetContent("OLD1").value(), std::optional<std::string>("Hi\r\n\r\nhi"));
}

}  // namespace
}  // namespace danerelay::queue
