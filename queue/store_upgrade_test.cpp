// Upgrades: a queue written at every earlier schema version is migrated in place by the daemon's
// open with every message, recipient state and attempt kept; a queue of a newer version is
// refused and left untouched. The old queues are built by the migration history itself
// (kMigrations[0..v)), and filled with the columns that existed at v, so a new schema version is
// covered without new fixtures; a new NOT NULL column without a default fails here until the
// rows below name it.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "queue/store_impl.hpp"
#include "queue/store_test_fixture.hpp"

namespace danerelay::queue {
namespace {

using Row = std::map<std::string, std::string>;  // column -> SQL literal

void Exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK)
      << (err ? err : "") << "\n"
      << sql;
}

std::set<std::string> Columns(sqlite3* db, const std::string& table) {
  std::set<std::string> out;
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, ("PRAGMA table_info(" + table + ")").c_str(), -1, &s, nullptr),
            SQLITE_OK);
  while (sqlite3_step(s) == SQLITE_ROW) {
    out.insert(reinterpret_cast<const char*>(sqlite3_column_text(s, 1)));
  }
  sqlite3_finalize(s);
  return out;
}

// Inserts the columns of `row` that `table` has at this version.
void Insert(sqlite3* db, const std::string& table, const Row& row) {
  const auto have = Columns(db, table);
  if (have.empty()) return;  // the table came later
  std::string names, values;
  for (const auto& [column, value] : row) {
    if (!have.contains(column)) continue;
    names += (names.empty() ? "" : ", ") + column;
    values += (values.empty() ? "" : ", ") + value;
  }
  Exec(db, "INSERT INTO " + table + " (" + names + ") VALUES (" + values + ")");
}

constexpr const char* kContentHex = "X'5375626A6563743A206F6C640D0A0D0A626F64790D0A'";
constexpr const char* kContent = "Subject: old\r\n\r\nbody\r\n";

Row MessageRow(const std::string& id, const std::string& completed) {
  return {{"id", "'" + id + "'"},
          {"arrival_us", "1790000000000000"},
          {"sender", "'a@example.org'"},
          {"size", "22"},
          {"client_address", "'192.0.2.7'"},
          {"client_helo", "'old.example'"},
          {"protocol", "'ESMTPS'"},
          {"body_8bitmime", "1"},
          {"smtputf8", "0"},
          {"dsn_ret", "'HDRS'"},
          {"dsn_envid", "'env-" + id + "'"},
          {"content", kContentHex},
          {"completed_us", completed}};
}

Row RecipientRow(const std::string& id, int idx, const std::string& address,
                 const std::string& state, int attempts) {
  return {{"message_id", "'" + id + "'"},
          {"idx", std::to_string(idx)},
          {"address", "'" + address + "'"},
          {"state", "'" + state + "'"},
          {"notify", "6"},
          {"orcpt", "'rfc822;" + address + "'"},
          {"attempts", std::to_string(attempts)},
          {"next_attempt_us", state == "deferred" ? "1790000900000000" : "NULL"},
          {"last_status", attempts ? "'4.4.1'" : "''"},
          {"last_reply", attempts ? "'connection refused'" : "''"},
          {"last_remote", attempts ? "'mx.example.net'" : "''"},
          {"last_attempt_us", attempts ? "1790000300000000" : "NULL"},
          {"delay_warned", "0"},
          {"domain", "'" + address.substr(address.find('@') + 1) + "'"},
          {"site", attempts ? "'mx.example.net'" : "''"}};
}

Row AttemptRow(const std::string& id, int idx) {
  return {{"message_id", "'" + id + "'"},
          {"recipient_idx", std::to_string(idx)},
          {"time_us", "1790000300000000"},
          {"mx_host", "'mx.example.net'"},
          {"ip", "'192.0.2.25'"},
          {"dnssec_mx", "'secure'"},
          {"dnssec_address", "'secure'"},
          {"dnssec_tlsa", "''"},
          {"tls_verdict", "'none'"},
          {"tlsa_record", "''"},
          {"reply", "'connection refused'"},
          {"status", "'4.4.1'"},
          {"site", "'mx.example.net'"}};
}

// A queue at schema `version`: one pending message (a deferred recipient with two attempts and
// a held one) and one completed (delivered) message.
void WriteQueueAt(const std::filesystem::path& path, int version) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  for (int v = 0; v < version; ++v) Exec(db, kMigrations[v]);
  Exec(db, "PRAGMA user_version = " + std::to_string(version));
  Exec(db, "BEGIN");
  Insert(db, "messages", MessageRow("P1", "NULL"));
  Insert(db, "messages", MessageRow("C1", "1790000400000000"));
  for (const char* id : {"P1", "C1"}) {
    Insert(db, "contents", {{"message_id", std::string("'") + id + "'"}, {"data", kContentHex}});
  }
  Insert(db, "recipients", RecipientRow("P1", 0, "b@example.net", "deferred", 2));
  Insert(db, "recipients", RecipientRow("P1", 1, "c@example.com", "held", 0));
  Insert(db, "recipients", RecipientRow("C1", 0, "d@example.net", "delivered", 1));
  for (int i = 0; i < 2; ++i) Insert(db, "attempts", AttemptRow("P1", 0));
  Insert(db, "attempts", AttemptRow("C1", 0));
  Exec(db, "COMMIT");
  sqlite3_close(db);
}

class UpgradeTest : public StoreTest, public ::testing::WithParamInterface<int> {};

TEST_P(UpgradeTest, MigratesInPlaceKeepingEverything) {
  const int version = GetParam();
  std::filesystem::create_directories(options_.path);
  WriteQueueAt(Store::DatabasePath(options_), version);
  if (HasFatalFailure()) return;
  auto store = OpenRw();  // as danerelayd opens its queue
  ASSERT_TRUE(store);
  EXPECT_EQ(store->schema_version(), Store::kSchemaVersion);

  auto p1 = store->GetMessage("P1").value();
  ASSERT_TRUE(p1);
  EXPECT_EQ(p1->sender, "a@example.org");
  EXPECT_EQ(p1->dsn_envid, "env-P1");
  ASSERT_EQ(p1->recipients.size(), 2u);
  EXPECT_EQ(p1->recipients[0].state, RecipientState::kDeferred);
  EXPECT_EQ(p1->recipients[0].attempts, 2);
  EXPECT_EQ(p1->recipients[0].last_status, "4.4.1");
  EXPECT_EQ(p1->recipients[0].orcpt, "rfc822;b@example.net");
  EXPECT_EQ(p1->recipients[1].state, RecipientState::kHeld);
  EXPECT_EQ(store->GetContent("P1").value(), std::optional<std::string>(kContent));
  EXPECT_EQ(store->GetAttempts("P1").value().size(), 2u);
  // Sites (schema 18): unknown ('') in a queue from before, kept in one written since.
  const std::string site = version >= 18 ? "mx.example.net" : "";
  EXPECT_EQ(p1->recipients[0].site, site);
  EXPECT_EQ(store->GetAttempts("P1").value().at(0).site, site);
  auto sites = store->GetSites(10);
  ASSERT_TRUE(sites);
  EXPECT_EQ(sites->unknown, version >= 18 ? 0 : 1);  // the deferred recipient
  EXPECT_EQ(sites->top.size(), version >= 18 ? 1u : 0u);

  auto c1 = store->GetMessage("C1").value();
  ASSERT_TRUE(c1);
  EXPECT_EQ(c1->recipients.at(0).state, RecipientState::kDelivered);
  EXPECT_EQ(store->GetAttempts("C1").value().size(), 1u);
  // The migrated queue works: found by its recipients' domain, the deferred recipient claimed.
  auto listed = store->ListMessages(Select([](auto& s) { s.domain = "example.net"; }));
  ASSERT_TRUE(listed);
  ASSERT_FALSE(listed->empty());
  EXPECT_EQ(listed->front().id, "P1");
  EXPECT_EQ(store->ClaimDue(TimePoint::max(), 10)->size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(EveryEarlierSchema, UpgradeTest,
                         ::testing::Range(1, Store::kSchemaVersion + 1),
                         [](const auto& p) { return "v" + std::to_string(p.param); });

std::string Bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// A queue from a newer danerelayd: refused with a message that says so, the file unchanged.
TEST_F(StoreTest, RefusesANewerSchemaAndLeavesItAlone) {
  std::filesystem::create_directories(options_.path);
  const auto path = Store::DatabasePath(options_);
  WriteQueueAt(path, Store::kSchemaVersion);
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    Exec(db, "PRAGMA user_version = " + std::to_string(Store::kSchemaVersion + 1));
    sqlite3_close(db);
  }
  const std::string before = Bytes(path);
  for (auto mode : {OpenMode::kReadWrite, OpenMode::kReadWriteExisting, OpenMode::kReadOnly}) {
    auto store = Store::Open(options_, mode);
    ASSERT_FALSE(store);
    EXPECT_NE(store.error().message.find(std::to_string(Store::kSchemaVersion + 1)),
              std::string::npos)
        << store.error().message;
  }
  EXPECT_TRUE(Bytes(path) == before) << "the newer queue file was changed";
}

}  // namespace
}  // namespace danerelay::queue
