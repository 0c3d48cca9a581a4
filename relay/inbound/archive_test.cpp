#include "relay/inbound/archive.hpp"

#include <gtest/gtest.h>

namespace danerelay::relay {
namespace {

queue::NewMessage Message(std::string sender, std::vector<std::string> to) {
  queue::NewMessage m;
  m.sender = std::move(sender);
  for (auto& t : to) m.recipients.push_back({t, queue::kNotifyNone, ""});
  return m;
}

TEST(ArchiveTest, AddsTheGlobalAndTheSenderDomainsArchiveWithNotifyNever) {
  ArchiveOptions a{"all@archive.example", {{"example.org", "org@archive.example"}}};
  auto m = Message("Alice@Example.ORG", {"bob@example.net"});
  AddArchiveRecipients(m, a);
  ASSERT_EQ(m.recipients.size(), 3u);
  EXPECT_EQ(m.recipients[1].address, "all@archive.example");
  EXPECT_EQ(m.recipients[1].notify, queue::kNotifyNever);
  EXPECT_EQ(m.recipients[2].address, "org@archive.example");
  EXPECT_EQ(m.recipients[2].notify, queue::kNotifyNever);
}

TEST(ArchiveTest, NullSenderGetsOnlyTheGlobalArchiveAndNoAddressTwice) {
  ArchiveOptions a{"all@archive.example", {{"example.org", "ALL@archive.example"}}};
  auto bounce = Message("", {"x@example.net"});
  AddArchiveRecipients(bounce, a);
  ASSERT_EQ(bounce.recipients.size(), 2u);
  auto m = Message("a@example.org", {"all@archive.example"});
  AddArchiveRecipients(m, a);
  EXPECT_EQ(m.recipients.size(), 1u);  // already a recipient, in any case
}

TEST(ArchiveTest, NothingConfiguredChangesNothing) {
  auto m = Message("a@example.org", {"b@example.net"});
  AddArchiveRecipients(m, {});
  EXPECT_EQ(m.recipients.size(), 1u);
}

}  // namespace
}  // namespace danerelay::relay
