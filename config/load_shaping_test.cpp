// [shaping]: what the file says becomes delivery options; mistakes are named by file, line and
// key.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config.hpp"

namespace danerelay::config {
namespace {

using ::testing::HasSubstr;

TEST(ShapingConfigTest, DefaultsAreAHundredMessagesAndTwentyConnections) {
  auto c = LoadString("", "s.toml", "/tmp");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->delivery.messages_per_connection, 100u);
  EXPECT_EQ(c->delivery.max_per_destination, 20u);
}

TEST(ShapingConfigTest, ReadsTheDefaultTable) {
  auto c = LoadString("[shaping.default]\nconnections = 2\nmessages_per_connection = 3\n", "s.toml",
                      "/tmp");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->delivery.messages_per_connection, 3u);
  EXPECT_EQ(c->delivery.max_per_destination, 2u);
}

TEST(ShapingConfigTest, DeadDestinations) {
  auto d = LoadString("", "s.toml", "/tmp");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->delivery.dead_after, 10u);
  EXPECT_EQ(d->delivery.dead_for, std::chrono::minutes(5));
  auto c = LoadString("[shaping.default]\ndead_after = 0\ndead_for = \"1h\"\n", "s.toml", "/tmp");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->delivery.dead_after, 0u);
  EXPECT_EQ(c->delivery.dead_for, std::chrono::hours(1));
}

TEST(ShapingConfigTest, ReadsMessageRatesAndRefusesAMalformedOne) {
  auto c = LoadString(
      "[shaping.default]\nmessage_rate = \"60/min\"\n[shaping.domain.\"Gmail.com\"]\n"
      "message_rate = \"600/h\"\n",
      "s.toml", "/tmp");
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_TRUE(c->delivery.message_rate);
  EXPECT_EQ(c->delivery.message_rate->count, 60u);
  EXPECT_EQ(c->delivery.message_rate->window, std::chrono::seconds(60));
  ASSERT_EQ(c->delivery.message_rate_by_domain.count("gmail.com"), 1u);
  EXPECT_EQ(c->delivery.message_rate_by_domain.at("gmail.com").text, "600/h");
  auto bad = LoadString("[shaping.default]\nmessage_rate = \"fast\"\n", "s.toml", "/tmp");
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message,
              HasSubstr("s.toml:2: shaping.default.message_rate: expected a rate"));
  bad = LoadString("[shaping.domain.\"x.example\"]\nconnections = 2\n", "s.toml", "/tmp");
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message, HasSubstr("shaping.domain.x.example.connections: unknown key"));
}

TEST(ShapingConfigTest, TheOldNameOfConnectionsStillWorks) {
  auto c = LoadString("[delivery]\nmax_per_destination = 7\n", "s.toml", "/tmp");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->delivery.max_per_destination, 7u);
}

TEST(ShapingConfigTest, ReadsReplyRulesInOrder) {
  auto c = LoadString(R"([[shaping.on_reply]]
match = "^421 4\\.7\\.28 "
suspend = "20s"
[[shaping.on_reply]]
match = "too many connections"
suspend = "0s"
)",
                      "s.toml", "/tmp");
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_EQ(c->delivery.on_reply.size(), 2u);
  EXPECT_EQ(c->delivery.on_reply[0].match, "^421 4\\.7\\.28 ");
  EXPECT_EQ(c->delivery.on_reply[0].suspend, std::chrono::seconds(20));
  EXPECT_EQ(c->delivery.on_reply[1].suspend, std::chrono::seconds(0));
}

TEST(ShapingConfigTest, ReadsSitesAndProviders) {
  auto c = LoadString(R"([shaping.site."Google"]
connections = 4
messages_per_connection = 50
message_rate = "600/h"
connection_rate = "1/s"
[shaping.site."mx1.example.net,mx2.example.net"]
message_rate = "10/min"
[shaping.providers]
hoster = [".mx.hoster.example"]
)",
                      "s.toml", "/tmp");
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_EQ(c->delivery.site_shaping.size(), 2u);
  const auto& google = c->delivery.site_shaping.at("google");
  EXPECT_EQ(google.connections, 4u);
  EXPECT_EQ(google.messages_per_connection, 50u);
  ASSERT_TRUE(google.message_rate);
  EXPECT_EQ(google.message_rate->text, "600/h");
  ASSERT_TRUE(google.connection_rate);
  EXPECT_EQ(google.connection_rate->count, 1u);
  EXPECT_EQ(google.connection_rate->window, std::chrono::seconds(1));
  const auto& pair = c->delivery.site_shaping.at("mx1.example.net,mx2.example.net");
  EXPECT_FALSE(pair.connections);  // [shaping.default]'s
  EXPECT_FALSE(pair.messages_per_connection);
  ASSERT_EQ(c->delivery.providers.size(), 1u);
  EXPECT_EQ(c->delivery.providers[0].name, "hoster");
  EXPECT_EQ(c->delivery.providers[0].suffixes, std::vector<std::string>{".mx.hoster.example"});
}

TEST(ShapingConfigTest, AReplyRuleMayLowerTheConnectionsInstead) {
  auto c = LoadString(R"([[shaping.on_reply]]
match = "too many connections"
connections = 2
for = "30m"
)",
                      "s.toml", "/tmp");
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_EQ(c->delivery.on_reply.size(), 1u);
  EXPECT_EQ(c->delivery.on_reply[0].connections, 2u);
  EXPECT_EQ(c->delivery.on_reply[0].lower_for, std::chrono::minutes(30));
  EXPECT_EQ(c->delivery.on_reply[0].suspend, std::chrono::seconds(0));
  EXPECT_TRUE(c->delivery.on_reply[0].Acts());
}

struct BadShaping {
  const char* toml;
  const char* expected;
};

class ShapingErrorTest : public ::testing::TestWithParam<BadShaping> {};

TEST_P(ShapingErrorTest, NamesFileLineAndKey) {
  auto c = LoadString(GetParam().toml, "bad.toml", "/tmp");
  ASSERT_FALSE(c) << GetParam().toml;
  EXPECT_THAT(c.error().message, HasSubstr(GetParam().expected)) << c.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    EachMistake, ShapingErrorTest,
    ::testing::Values(
        BadShaping{"[shaping.default]\nmessages_per_connection = 0\n",
                   "bad.toml:2: shaping.default.messages_per_connection: 0 is out of range "
                   "(1..100000)"},
        BadShaping{"[shaping.default]\n\nconnections = \"two\"\n",
                   "bad.toml:3: shaping.default.connections: expected an integer, got a string"},
        BadShaping{"[shaping.default]\nconnections = 0\n",
                   "bad.toml:2: shaping.default.connections: 0 is out of range (1..10000)"},
        BadShaping{"[delivery]\nmax_per_destination = 5\n[shaping.default]\nconnections = 2\n",
                   "bad.toml:4: shaping.default.connections: [delivery] max_per_destination (its "
                   "old name) is set too: keep one"},
        BadShaping{"[shaping.default]\ndead_for = \"0s\"\n",
                   "bad.toml:2: shaping.default.dead_for: must be at least 1s"},
        BadShaping{"[shaping.default]\ndead_after = 1001\n",
                   "bad.toml:2: shaping.default.dead_after: 1001 is out of range (0..1000)"},
        BadShaping{"[shaping.default]\nrate = 5\n",
                   "bad.toml:2: shaping.default.rate: unknown key"},
        BadShaping{"[shaping.site]\nx = 1\n",
                   "bad.toml:2: shaping.site.x: expected a table of shaping settings"},
        BadShaping{"[shaping.site.google]\nconnections = 0\n",
                   "bad.toml:2: shaping.site.google.connections: 0 is out of range (1..10000)"},
        BadShaping{"[shaping.default]\nconnection_rate = 10\n",
                   "bad.toml:2: shaping.default.connection_rate: expected a rate"},
        BadShaping{"[shaping.site.google]\ndead_after = 3\n",
                   "bad.toml:2: shaping.site.google.dead_after: unknown key"},
        BadShaping{"[shaping.providers]\nhoster = [\"mx.hoster.example\"]\n",
                   "bad.toml:2: shaping.providers.hoster: 'mx.hoster.example' is not a suffix"},
        BadShaping{"[[shaping.on_reply]]\nmatch = \"(421\"\nsuspend = \"1m\"\n",
                   "bad.toml:2: shaping.on_reply[0].match: not a POSIX extended regular "
                   "expression: "},
        BadShaping{"[[shaping.on_reply]]\nmatch = \"421\"\nsuspend = \"1m\"\n"
                   "[[shaping.on_reply]]\nmatch = \"450\"\nsuspend = \"soon\"\n",
                   "bad.toml:6: shaping.on_reply[1].suspend: expected a duration"},
        BadShaping{"[[shaping.on_reply]]\nmatch = \"x\"\nsuspend = \"1m\"\nconnections = 1\n",
                   "bad.toml:3: shaping.on_reply[0].suspend: give either suspend or connections"},
        BadShaping{"[[shaping.on_reply]]\nmatch = \"x\"\nconnections = 1\n",
                   "bad.toml:3: shaping.on_reply[0].connections: missing: for = \"30m\""},
        BadShaping{"[[shaping.on_reply]]\nmatch = \"x\"\nsuspend = \"1m\"\nfor = \"1m\"\n",
                   "bad.toml:4: shaping.on_reply[0].for: only with connections"},
        BadShaping{"[[shaping.on_reply]]\nmatch = \"x\"\n",
                   "shaping.on_reply[0].match: missing: suspend = \"30m\", or connections"},
        BadShaping{"[[shaping.on_reply]]\nsuspend = \"1m\"\n",
                   "shaping.on_reply[0].match: missing: a regular expression"},
        BadShaping{"[[shaping.on_reply]]\nmatch = \"x\"\nsuspend = \"1m\"\nlower = 2\n",
                   "bad.toml:4: shaping.on_reply[0].lower: unknown key"},
        BadShaping{"[shaping]\non_reply = \"421\"\n",
                   "bad.toml:2: shaping.on_reply: expected one or more [[shaping.on_reply]] "
                   "tables"}));

}  // namespace
}  // namespace danerelay::config
