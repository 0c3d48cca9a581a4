#pragma once
// The fixture of the store's unit tests: a fresh queue directory per test, and a message with
// two recipients, DSN parameters and content.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "queue/store.hpp"

namespace danerelay::queue {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.path = std::filesystem::temp_directory_path() /
                    ("danerelay-store-test-" + std::to_string(::getpid()) + "-" +
                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(options_.path);
  }
  void TearDown() override { std::filesystem::remove_all(options_.path); }

  std::unique_ptr<Store> OpenRw() {
    auto s = Store::Open(options_, OpenMode::kReadWrite);
    EXPECT_TRUE(s) << (s ? "" : s.error().message);
    return s ? std::move(*s) : nullptr;
  }

  // A selection made by `set` (designated initializers would name every field under -Wextra).
  static Store::Selection Select(const std::function<void(Store::Selection&)>& set) {
    Store::Selection s;
    set(s);
    return s;
  }

  NewMessage Message(std::string id, std::string content = "Subject: hi\r\n\r\nbody\r\n") {
    NewMessage m;
    m.id = std::move(id);
    m.arrival = TimePoint(std::chrono::seconds(1'790'000'000));
    m.sender = "alice@example.org";
    m.recipients = {{"bob@example.net", kNotifySuccess | kNotifyFailure, "rfc822;bob@example.net"},
                    {"carol@example.com", kNotifyNone, ""}};
    m.content = std::move(content);
    m.client_address = "127.0.0.1";
    m.client_helo = "client.example.org";
    m.protocol = "ESMTPS";
    m.body_8bitmime = true;
    m.dsn_ret = DsnRet::kHdrs;
    m.dsn_envid = "env-1";
    return m;
  }

  // A backlog of 600 messages of 64 KiB (~38 MB), inserted; false when an insert failed.
  static constexpr int kBacklog = 600;
  bool InsertBacklog(Store& store) {
    const std::string body = "Subject: big\r\n\r\n" + std::string(64 * 1024, 'x') + "\r\n";
    std::vector<NewMessage> backlog;
    for (int i = 0; i < kBacklog; ++i) backlog.push_back(Message("B" + std::to_string(i), body));
    std::vector<const NewMessage*> batch;
    for (const auto& m : backlog) batch.push_back(&m);
    for (const auto& r : store.InsertBatch(batch)) {
      if (!r) return false;
    }
    return true;
  }

  StoreOptions options_;
};

}  // namespace danerelay::queue
