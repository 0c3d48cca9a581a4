#include "relay/daemon/reload.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace danerelay::relay {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(RestartNeeded, TheSameConfigurationNeedsNone) {
  const config::Config running = config::Defaults();
  EXPECT_THAT(RestartNeeded(running, running), IsEmpty());
}

TEST(RestartNeeded, WhatAReloadAppliesNeedsNone) {
  const config::Config running = config::Defaults();
  config::Config next = running;
  next.server.hostname = "other.example";
  next.server.limits.max_connections += 1;
  next.delivery.enabled = !running.delivery.enabled;
  next.delivery.max_parallel += 1;
  next.log.syslog = !running.log.syslog;
  next.source = "/etc/danerelay/other.toml";
  EXPECT_THAT(RestartNeeded(running, next), IsEmpty());
}

TEST(RestartNeeded, QueuePath) {
  const config::Config running = config::Defaults();
  config::Config next = running;
  next.queue.path = "/var/spool/elsewhere";
  EXPECT_THAT(RestartNeeded(running, next), ElementsAre("[queue] path"));
}

TEST(RestartNeeded, EachResolverSettingMadeAtStart) {
  const config::Config running = config::Defaults();
  config::Config forwarders = running;
  forwarders.dns.forwarders.push_back("127.0.0.53");
  config::Config anchor = running;
  anchor.dns.trust_anchor_file = "/var/lib/unbound/root.key";
  config::Config hints = running;
  hints.dns.root_hints = "/usr/share/dns/root.hints";
  for (const auto* next : {&forwarders, &anchor, &hints}) {
    EXPECT_THAT(RestartNeeded(running, *next),
                ElementsAre("[dns] forwarders, trust_anchor_file and root_hints"));
  }
}

TEST(RestartNeeded, MetricsAddressOrPort) {
  const config::Config running = config::Defaults();
  config::Config address = running;
  address.metrics.address = "127.0.0.1";
  config::Config port = running;
  port.metrics.port = running.metrics.port + 1;
  EXPECT_THAT(RestartNeeded(running, address), ElementsAre("[metrics]"));
  EXPECT_THAT(RestartNeeded(running, port), ElementsAre("[metrics]"));
}

TEST(RestartNeeded, ServerUserOrGroup) {
  const config::Config running = config::Defaults();
  config::Config user = running;
  user.server.user = "danerelay";
  config::Config group = running;
  group.server.group = "mail";
  EXPECT_THAT(RestartNeeded(running, user), ElementsAre("[server] user and group"));
  EXPECT_THAT(RestartNeeded(running, group), ElementsAre("[server] user and group"));
}

TEST(RestartNeeded, EveryOneInTheOrderTheLogNamesThem) {
  const config::Config running = config::Defaults();
  config::Config next = running;
  next.server.user = "danerelay";
  next.metrics.port = running.metrics.port + 1;
  next.dns.forwarders.push_back("127.0.0.53");
  next.queue.path = "/var/spool/elsewhere";
  EXPECT_THAT(RestartNeeded(running, next),
              ElementsAre("[queue] path", "[dns] forwarders, trust_anchor_file and root_hints",
                          "[metrics]", "[server] user and group"));
}

}  // namespace
}  // namespace danerelay::relay
