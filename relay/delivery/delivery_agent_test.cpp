// The delivery agent end to end inside one process: a real queue (SQLite in a temporary
// directory, group commit), DNS from a FakeLookup, and a scripted SMTP peer on 127.0.0.1. Each
// row queues one message and checks the state, enhanced status and cause every recipient ends
// in: delivered, a 4xx and a 5xx reply, no connection, DANE required but impossible, DANE
// without STARTTLS, and expiry.
#include "relay/delivery/delivery_agent.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <asio/io_context.hpp>

#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dns/fake_lookup.hpp"
#include "queue/committer.hpp"
#include "queue/queue_id.hpp"
#include "relay/delivery/scripted_peer.hpp"

namespace danerelay::relay {
namespace {

using dns::DnssecState;
using dns::FakeLookup;
using queue::Cause;
using queue::RecipientState;

constexpr char kMe[] = "relay.test";

struct Expected {
  RecipientState state;
  std::string status;
  // nullopt: not checked. A delivered recipient is stored with cause kRemoteReply although
  // queue/message.hpp says kNone (reported, left to the typed-outcome work).
  std::optional<Cause> cause;
};

struct AgentCase {
  std::string name;
  // RCPT replies, one per recipient (rcpt<i>@peer.test); empty: no MAIL transaction.
  std::vector<std::string> rcpt_replies;
  bool starttls_offered = false;
  std::function<void(FakeLookup&)> dns;           // changes to the secure, TLSA-less world
  std::function<void(DeliveryOptions&)> options;  // changes to the defaults
  std::chrono::seconds age{0};                    // how old the message is when queued
  std::vector<Expected> expected;                 // one per recipient
  bool reaches_peer = false;                      // one connection is made to the peer
};

void PrintTo(const AgentCase& c, std::ostream* os) { *os << c.name; }

std::string Rcpt(size_t i) { return "rcpt" + std::to_string(i) + "@peer.test"; }

// One connection: greeting, EHLO (no PIPELINING: one command at a time), MAIL, the RCPTs, and
// the data when one was accepted; then RSET (the agent keeps the connection) and QUIT.
PeerScript Script(const AgentCase& c) {
  PeerScript s{{"", {"220 mx.peer.test ESMTP scripted"}}};
  if (c.starttls_offered) {
    s.push_back({"EHLO relay.test", {"250-mx.peer.test", "250-8BITMIME", "250 STARTTLS"}});
  } else {
    s.push_back({"EHLO relay.test", {"250-mx.peer.test", "250 8BITMIME"}});
  }
  s.push_back({"MAIL FROM:<sender@example.org>", {"250 2.1.0 ok"}});
  bool accepted = false;
  for (size_t i = 0; i < c.rcpt_replies.size(); ++i) {
    s.push_back({"RCPT TO:<" + Rcpt(i) + ">", {c.rcpt_replies[i]}});
    accepted = accepted || c.rcpt_replies[i].starts_with("2");
  }
  if (accepted) {
    s.push_back({"DATA", {"354 go ahead"}});
    s.push_back({".", {"250 2.0.0 queued as X1"}});
  }
  s.push_back({"RSET", {"250 2.0.0 reset"}});
  s.push_back({"QUIT", {"221 2.0.0 bye"}});
  return s;
}

// A usable DANE-EE record that no certificate has.
dns::TlsaAnswer UnmatchedTlsa(const std::string& name) {
  auto t = FakeLookup::With<dns::TlsaAnswer>(DnssecState::kSecure, name);
  t.records = {dns::TlsaRecord{3, 1, 1, std::vector<std::uint8_t>(32, 0xab)}};
  return t;
}

const std::vector<AgentCase> kCases = {
    {"delivered",
     {"250 2.1.5 ok", "250 2.1.5 ok"},
     false,
     nullptr,
     nullptr,
     {},
     {{RecipientState::kDelivered, "2.0.0", std::nullopt},
      {RecipientState::kDelivered, "2.0.0", std::nullopt}},
     true},
    {"per_recipient_4xx_and_5xx",
     {"250 2.1.5 ok", "451 4.3.0 try later", "550 5.1.1 no such user"},
     false,
     nullptr,
     nullptr,
     {},
     {{RecipientState::kDelivered, "2.0.0", std::nullopt},
      {RecipientState::kDeferred, "4.3.0", Cause::kRemoteReply},
      {RecipientState::kFailed, "5.1.1", Cause::kRemoteReply}},
     true},
    {"connection_refused",
     {},
     false,
     [](FakeLookup& d) {  // nothing listens on 127.0.0.2 (the peer is bound to 127.0.0.1)
       d.addresses[{"mx.peer.test", false}].addresses = {"127.0.0.2"};
     },
     nullptr,
     {},
     {{RecipientState::kDeferred, "4.4.1", Cause::kConnect}}},
    {"mandatory_dane_with_insecure_addresses",
     {},
     false,
     [](FakeLookup& d) {
       d.addresses[{"mx.peer.test", false}].dnssec = DnssecState::kInsecure;
     },
     [](DeliveryOptions& o) { o.mandatory_domains = {"peer.test"}; },
     {},
     {{RecipientState::kDeferred, "4.7.5", Cause::kDaneRequired}}},
    {"usable_tlsa_and_no_starttls",
     {},
     false,
     nullptr,  // TLSA filled in by the test (its name holds the peer's port)
     nullptr,
     {},
     {{RecipientState::kDeferred, "4.7.5", Cause::kStartTlsNotOffered}},
     true},
    {"expired",
     {},
     false,
     nullptr,
     [](DeliveryOptions& o) { o.retry.max_lifetime = std::chrono::seconds(3600); },
     std::chrono::hours(2),
     {{RecipientState::kExpired, "4.4.7", Cause::kNone}}},
};

class DeliveryAgentTest : public ::testing::TestWithParam<AgentCase> {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("danerelay-agent-test-" + std::to_string(::getpid()) + "-" + GetParam().name);
    std::filesystem::remove_all(dir_);
    queue::StoreOptions so;
    so.path = dir_;
    auto store = queue::Store::Open(so, queue::OpenMode::kReadWrite);
    ASSERT_TRUE(store) << store.error().message;
    committer_ = std::make_unique<queue::Committer>(std::move(*store));

    auto mx = FakeLookup::With<dns::MxAnswer>(DnssecState::kSecure, "peer.test");
    mx.records = {{10, "mx.peer.test"}};
    dns_.mx["peer.test"] = mx;
    auto a = FakeLookup::With<dns::AddressAnswer>(DnssecState::kSecure, "mx.peer.test");
    a.addresses = {"127.0.0.1"};
    dns_.addresses[{"mx.peer.test", false}] = a;
    dns_.addresses[{"mx.peer.test", true}] =
        FakeLookup::With<dns::AddressAnswer>(DnssecState::kSecure, "mx.peer.test");
  }
  void TearDown() override {
    committer_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Queues the message and waits (bounded) for the commit.
  std::string Enqueue(size_t recipients, std::chrono::seconds age) {
    queue::NewMessage m;
    m.id = ids_.Next(queue::Clock::now());
    m.arrival = queue::Clock::now() - age;
    m.sender = "sender@example.org";
    for (size_t i = 0; i < recipients; ++i)
      m.recipients.push_back({Rcpt(i), queue::kNotifyNone, ""});
    m.content = "Subject: agent test\r\n\r\nbody\r\n";
    m.client_address = "127.0.0.1";
    m.client_helo = "client.test";
    m.protocol = "ESMTP";
    std::promise<bool> done;
    committer_->Submit(m, [&](tl::expected<void, queue::StoreError> r) { done.set_value(!!r); });
    auto f = done.get_future();
    EXPECT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    EXPECT_TRUE(f.get());
    return m.id;
  }

  std::vector<queue::StoredRecipient> Recipients(const std::string& id) {
    std::promise<std::vector<queue::StoredRecipient>> got;
    committer_->Post([&](queue::Store& s) {
      auto m = s.GetMessage(id);
      got.set_value(m && *m ? (*m)->recipients : std::vector<queue::StoredRecipient>{});
    });
    auto f = got.get_future();
    EXPECT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    return f.get();
  }

  static bool Settled(const std::vector<queue::StoredRecipient>& rs) {
    if (rs.empty()) return false;
    for (const auto& r : rs) {
      if (r.state == RecipientState::kQueued || r.state == RecipientState::kAttempting) {
        return false;
      }
    }
    return true;
  }

  std::filesystem::path dir_;
  std::unique_ptr<queue::Committer> committer_;
  queue::QueueIdGenerator ids_;
  FakeLookup dns_;
};

TEST_P(DeliveryAgentTest, RecipientsEndInTheirStateStatusAndCause) {
  const AgentCase& c = GetParam();
  asio::io_context io;
  ScriptedPeer peer(io, {Script(c)});
  if (c.dns) c.dns(dns_);
  if (c.name == "usable_tlsa_and_no_starttls") {
    const std::string tlsa = "_" + std::to_string(peer.port()) + "._tcp.mx.peer.test";
    dns_.tlsa[tlsa] = UnmatchedTlsa(tlsa);
  }
  DeliveryOptions options;
  options.port = peer.port();
  options.mta_sts.enabled = false;
  options.preflight_interval = std::chrono::seconds(0);
  const std::chrono::seconds t(5);
  options.timeouts = {t, t, t, t, t, t};
  if (c.options) c.options(options);

  const std::string id = Enqueue(c.expected.size(), c.age);
  std::vector<queue::StoredRecipient> got;
  {
    DeliveryAgent agent(io, options, kMe, dns_, *committer_, ids_);
    ASSERT_TRUE(agent.Start());
    agent.Wake();
    for (int i = 0; i < 100 && !Settled(got); ++i) {
      io.run_for(std::chrono::milliseconds(100));
      got = Recipients(id);
    }
    agent.Stop();
    peer.Stop();
    for (int i = 0; i < 50 && agent.InFlight() > 0; ++i) io.run_for(std::chrono::milliseconds(100));
    io.run_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(Settled(got)) << "the recipients were not settled in 10 s";
  ASSERT_EQ(got.size(), c.expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    SCOPED_TRACE(got[i].address + ": " + got[i].last_status + " " + got[i].last_reply);
    EXPECT_EQ(got[i].state, c.expected[i].state);
    EXPECT_EQ(got[i].last_status, c.expected[i].status);
    if (c.expected[i].cause) {
      EXPECT_EQ(queue::Token(got[i].last_cause), queue::Token(*c.expected[i].cause));
    }
    // A deferred recipient comes back; a final one does not.
    EXPECT_EQ(got[i].next_attempt.has_value(), c.expected[i].state == RecipientState::kDeferred);
  }
  EXPECT_EQ(peer.connections().size(), c.reaches_peer ? 1u : 0u);
}

INSTANTIATE_TEST_SUITE_P(Outcomes, DeliveryAgentTest, ::testing::ValuesIn(kCases),
                         [](const auto& param_info) { return param_info.param.name; });

}  // namespace
}  // namespace danerelay::relay
