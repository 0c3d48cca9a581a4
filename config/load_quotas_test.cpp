// [quotas]: what the file says becomes rules; mistakes are named by file, line and key.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config.hpp"

namespace danerelay::config {
namespace {

using ::testing::HasSubstr;
using Kind = relay::QuotaRule::Kind;

TEST(QuotaConfigTest, ReadsEveryKindAndWindow) {
  auto c = LoadString(R"(
[quotas.user]
"*" = { messages = "2000/h", recipients = ["10000/d", "500/10min"] }
alice = { messages = "5/10s" }
[quotas.client]
"10.0.0.0/8" = { messages = "5/min" }
[quotas.sender]
"Bob@Example.org" = { recipients = "3/2h" }
[quotas.sender_domain]
"example.net" = { messages = "7/m" }
)",
                      "q.toml", "/tmp");
  ASSERT_TRUE(c) << c.error().message;
  const auto& rules = c->server.quotas.rules;
  ASSERT_EQ(rules.size(), 5u);
  std::map<std::string, const relay::QuotaRule*> by;
  for (const auto& r : rules) by[r.match] = &r;
  EXPECT_EQ(by.at("*")->kind, Kind::kUser);
  EXPECT_EQ(by.at("*")->messages.at(0).count, 2000u);
  EXPECT_EQ(by.at("*")->messages.at(0).window, std::chrono::seconds(3600));
  EXPECT_EQ(by.at("*")->recipients.at(1).window, std::chrono::seconds(600));
  EXPECT_EQ(by.at("alice")->messages.at(0).window, std::chrono::seconds(10));
  EXPECT_TRUE(by.at("10.0.0.0/8")->network->Contains("10.1.2.3"));
  EXPECT_EQ(by.at("bob@example.org")->recipients.at(0).window, std::chrono::seconds(7200));
  EXPECT_EQ(by.at("example.net")->messages.at(0).window, std::chrono::seconds(60));
}

struct Bad {
  const char* toml;
  const char* expected;
};
class QuotaConfigErrorTest : public ::testing::TestWithParam<Bad> {};

TEST_P(QuotaConfigErrorTest, NamesFileLineAndKey) {
  auto c = LoadString(GetParam().toml, "bad.toml", "/tmp");
  ASSERT_FALSE(c);
  EXPECT_THAT(c.error().message, HasSubstr(GetParam().expected)) << c.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Each, QuotaConfigErrorTest,
    ::testing::Values(
        Bad{"[quotas.user]\n\nalice = { messages = \"5 per hour\" }\n",
            "bad.toml:3: quotas.user.alice.messages: expected a quota such as"},
        Bad{"[quotas.user]\nalice = { messages = \"5/40d\" }\n",
            "bad.toml:2: quotas.user.alice.messages: expected a quota"},
        Bad{"[quotas.user]\nalice = { messages = \"0/h\" }\n", "quotas.user.alice.messages"},
        Bad{"[quotas.user]\nalice = { mesages = \"5/h\" }\n",
            "bad.toml:2: quotas.user.alice.mesages: unknown key"},
        Bad{"[quotas.user]\nalice = { }\n", "quotas.user.alice: expected messages or recipients"},
        Bad{"[quotas.client]\n\"10.0.0.1/8\" = { messages = \"5/h\" }\n",
            "bad.toml:2: quotas.client.10.0.0.1/8: "},
        Bad{"[quotas.sender]\n\"example.org\" = { messages = \"5/h\" }\n",
            "quotas.sender.example.org: expected a sender address"},
        Bad{"[quotas]\nusers = {}\n", "bad.toml:2: quotas.users: unknown key"}));

}  // namespace
}  // namespace danerelay::config
