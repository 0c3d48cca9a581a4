// The SMTP client over a real socket, against a scripted peer on 127.0.0.1: per-recipient
// outcomes and dot-stuffing, TLS required but not offered, "may" falling back to plain text
// after a failed handshake, the connection cache, and a peer that greets with our own name.
#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/ssl/context.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <utility>

#include "relay/delivery/host_planner.hpp"
#include "relay/delivery/scripted_peer.hpp"
#include "relay/delivery/smtp_client.hpp"
#include "tls/client.hpp"

namespace danerelay::relay {
namespace {

using queue::Cause;
using queue::RecipientState;

constexpr char kMe[] = "relay.test";

// Runs the client's coroutine on `io` until it finishes, bounded in any case. Then the peer has
// recorded all the client sent (it records a command before it replies), and `io` is stopped
// rather than drained: an idle cached session keeps its lazy deadline timer pending.
template <typename T>
std::optional<T> RunClient(asio::io_context& io, ScriptedPeer& peer, asio::awaitable<T> a) {
  std::optional<T> out;
  asio::co_spawn(io, std::move(a), [&](std::exception_ptr e, T v) {
    peer.Stop();
    io.stop();
    if (e) {
      ADD_FAILURE() << "the client threw";
      return;
    }
    out = std::move(v);
  });
  io.run_for(std::chrono::seconds(30));
  return out;
}

queue::MessageInfo Message(std::vector<std::string> recipients) {
  queue::MessageInfo m;
  m.id = "test-1";
  m.sender = "sender@example.org";
  for (size_t i = 0; i < recipients.size(); ++i) {
    queue::StoredRecipient r;
    r.index = static_cast<int>(i);
    r.address = recipients[i];
    m.recipients.push_back(r);
  }
  return m;
}

ClientRequest Request(const ScriptedPeer& peer, const queue::MessageInfo* m,
                      const std::string* content) {
  ClientRequest r;
  r.ip = "127.0.0.1";
  r.port = peer.port();
  r.mx_host = "mx.peer.test";
  r.helo_name = kMe;
  r.tls = tls::Requirement::kMay;
  auto context = tls::MakeClientContext();
  if (context) r.tls_context = *context;
  r.message = m;
  r.content = content;
  const std::chrono::seconds t(5);
  r.timeouts = {t, t, t, t, t, t};
  return r;
}

// A server context with a fresh self-signed certificate for mx.peer.test, and the "3 1 1"
// TLSA record that matches it.
struct PeerTls {
  std::shared_ptr<asio::ssl::context> context;
  dns::TlsaRecord tlsa;
};

PeerTls MakePeerTls() {
  PeerTls out;
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("mx.peer.test"), -1, -1, 0);
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  X509_sign(cert, key, EVP_sha256());
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(key, &der);
  std::vector<std::uint8_t> digest(32);
  unsigned int digest_len = 0;
  EVP_Digest(der, static_cast<size_t>(len), digest.data(), &digest_len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  out.tlsa = dns::TlsaRecord{3, 1, 1, digest};
  out.context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX_use_certificate(out.context->native_handle(), cert);
  SSL_CTX_use_PrivateKey(out.context->native_handle(), key);
  X509_free(cert);
  EVP_PKEY_free(key);
  return out;
}

const PeerStep kGreeting{"", {"220 mx.peer.test ESMTP scripted"}};
const PeerStep kEhlo{"EHLO relay.test", {"250-mx.peer.test", "250-PIPELINING", "250 8BITMIME"}};
const PeerStep kEhloStartTls{
    "EHLO relay.test", {"250-mx.peer.test", "250-PIPELINING", "250-8BITMIME", "250 STARTTLS"}};
const PeerStep kQuit{"QUIT", {"221 2.0.0 bye"}};
const PeerStep kStartTls{"STARTTLS", {"220 2.0.0 ready"}, false, /*start_tls=*/true};

// One message to good@peer.test, from MAIL to the reply to the data.
PeerScript Transaction() {
  return {{"MAIL FROM:<sender@example.org>", {"250 2.1.0 ok"}},
          {"RCPT TO:<good@peer.test>", {"250 2.1.5 ok"}},
          {"DATA", {"354 go ahead"}},
          {".", {"250 2.0.0 queued"}}};
}

PeerScript Concat(std::initializer_list<PeerScript> parts) {
  PeerScript out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

TEST(DeliveryClientTest, PlainDeliveryWithPerRecipientOutcomesAndDotStuffing) {
  asio::io_context io;
  ScriptedPeer peer(io, {{kGreeting,
                          kEhlo,
                          {"MAIL FROM:<sender@example.org>", {"250 2.1.0 ok"}},
                          {"RCPT TO:<good@peer.test>", {"250 2.1.5 ok"}},
                          {"RCPT TO:<bad@peer.test>", {"550 5.1.1 no such user here"}},
                          {"DATA", {"354 go ahead"}},
                          {".", {"250 2.0.0 queued as X1"}},
                          kQuit}});
  const auto m = Message({"good@peer.test", "bad@peer.test"});
  const std::string content = "Subject: dots\r\n\r\n.leading dot\r\nmiddle . dot\r\n..two\r\n.\r\n";
  const ClientRequest req = Request(peer, &m, &content);
  const auto res = RunClient(io, peer, DeliverOverSmtp(req));
  ASSERT_TRUE(res);
  EXPECT_TRUE(peer.problems().empty()) << peer.problems().front();
  EXPECT_FALSE(res->host_failed);
  EXPECT_FALSE(res->starttls_offered);
  EXPECT_EQ(res->local_ip, "127.0.0.1");
  ASSERT_EQ(res->recipients.size(), 2u);
  EXPECT_EQ(res->recipients[0].state, RecipientState::kDelivered);
  EXPECT_EQ(res->recipients[0].status, "2.0.0");
  EXPECT_TRUE(res->recipients[0].from_remote);
  EXPECT_EQ(res->recipients[1].state, RecipientState::kFailed);
  EXPECT_EQ(res->recipients[1].status, "5.1.1");
  EXPECT_TRUE(res->recipients[1].from_remote);
  EXPECT_EQ(res->recipients[1].cause, Cause::kRemoteReply);
  EXPECT_NE(res->recipients[1].reply.find("no such user here"), std::string::npos);
  // The refusal as the server said it, for [[shaping.on_reply]]; the 250s are not refusals.
  EXPECT_EQ(res->refusals, (std::vector<std::string>{"550 5.1.1 no such user here"}));

  ASSERT_EQ(peer.connections().size(), 1u);
  const auto& c = peer.connections()[0];
  EXPECT_EQ(c.commands,
            (std::vector<std::string>{"EHLO relay.test", "MAIL FROM:<sender@example.org>",
                                      "RCPT TO:<good@peer.test>", "RCPT TO:<bad@peer.test>", "DATA",
                                      "QUIT"}));
  ASSERT_EQ(c.messages.size(), 1u);
  // RFC 5321 §4.5.2: every leading dot doubled, a dot inside a line left alone.
  EXPECT_EQ(c.messages[0],
            "Subject: dots\r\n\r\n..leading dot\r\nmiddle . dot\r\n...two\r\n..\r\n");
  EXPECT_EQ(Unstuff(c.messages[0]), content);
}

// A throttling greeting (Gmail's words, two lines) is kept whole for [[shaping.on_reply]].
TEST(DeliveryClientTest, ARefusingGreetingIsKeptAsTheServerSaidIt) {
  asio::io_context io;
  ScriptedPeer peer(
      io, {{{"", {"421-4.7.28 unusual rate of mail", "421 4.7.28 rate limited"}}, kQuit}});
  const auto m = Message({"good@peer.test"});
  const std::string content = "Subject: x\r\n\r\nbody\r\n";
  const auto res = RunClient(io, peer, DeliverOverSmtp(Request(peer, &m, &content)));
  ASSERT_TRUE(res);
  EXPECT_TRUE(peer.problems().empty()) << peer.problems().front();
  EXPECT_TRUE(res->host_failed);
  EXPECT_EQ(res->refusals,
            (std::vector<std::string>{"421 4.7.28 unusual rate of mail 4.7.28 rate limited"}));
}

TEST(DeliveryClientTest, TlsRequiredButStartTlsNotOffered) {
  asio::io_context io;
  ScriptedPeer peer(io, {{kGreeting, kEhlo, kQuit}});
  const auto m = Message({"good@peer.test"});
  const std::string content = "Subject: x\r\n\r\nbody\r\n";
  ClientRequest req = Request(peer, &m, &content);
  req.tls = tls::Requirement::kEncrypt;
  const auto res = RunClient(io, peer, DeliverOverSmtp(req));
  ASSERT_TRUE(res);
  EXPECT_TRUE(peer.problems().empty()) << peer.problems().front();
  EXPECT_TRUE(res->host_failed);
  EXPECT_FALSE(res->retry_plaintext);
  EXPECT_EQ(res->failure.cause, Cause::kStartTlsNotOffered);
  EXPECT_EQ(res->failure.status, "4.7.5");
  EXPECT_EQ(res->failure.result_type, "starttls-not-supported");
  EXPECT_TRUE(res->recipients.empty());
  ASSERT_EQ(peer.connections().size(), 1u);
  // Nothing of the message went out in plain text.
  EXPECT_EQ(peer.connections()[0].commands, (std::vector<std::string>{"EHLO relay.test", "QUIT"}));
}

TEST(DeliveryClientTest, MayRetriesAFailedHandshakeInPlainText) {
  asio::io_context io;
  // The first connection answers STARTTLS and hangs up, so the handshake fails; the second
  // still offers STARTTLS, which the retry must not use.
  ScriptedPeer peer(
      io, {{kGreeting, kEhloStartTls, {"STARTTLS", {"220 2.0.0 ready"}, /*close_after=*/true}},
           Concat({{kGreeting, kEhloStartTls}, Transaction(), {kQuit}})});
  const auto m = Message({"good@peer.test"});
  const std::string content = "Subject: x\r\n\r\nbody\r\n";
  const ClientRequest req = Request(peer, &m, &content);
  ASSERT_TRUE(req.tls_context);
  const auto out = RunClient(io, peer, Connect(req, "127.0.0.1", nullptr));
  ASSERT_TRUE(out);
  EXPECT_TRUE(peer.problems().empty()) << peer.problems().front();
  ASSERT_TRUE(out->handshake_failed);
  EXPECT_TRUE(out->handshake_failed->host_failed);
  EXPECT_TRUE(out->handshake_failed->retry_plaintext);
  EXPECT_EQ(out->handshake_failed->failure.cause, Cause::kTlsHandshake);
  EXPECT_EQ(out->handshake_failed->failure.status, "4.7.5");
  EXPECT_FALSE(out->result.host_failed);
  EXPECT_TRUE(out->result.starttls_offered);
  EXPECT_FALSE(out->result.verdict);
  ASSERT_EQ(out->result.recipients.size(), 1u);
  EXPECT_EQ(out->result.recipients[0].state, RecipientState::kDelivered);
  ASSERT_EQ(peer.connections().size(), 2u);
  EXPECT_EQ(peer.connections()[0].commands,
            (std::vector<std::string>{"EHLO relay.test", "STARTTLS"}));
  EXPECT_EQ(peer.connections()[1].messages.size(), 1u);
}

TEST(DeliveryClientTest, MustNotFallBackToPlainTextWhenTlsIsRequired) {
  asio::io_context io;
  ScriptedPeer peer(
      io, {{kGreeting, kEhloStartTls, {"STARTTLS", {"220 2.0.0 ready"}, /*close_after=*/true}}});
  const auto m = Message({"good@peer.test"});
  const std::string content = "Subject: x\r\n\r\nbody\r\n";
  ClientRequest req = Request(peer, &m, &content);
  req.tls = tls::Requirement::kEncrypt;
  const auto out = RunClient(io, peer, Connect(req, "127.0.0.1", nullptr));
  ASSERT_TRUE(out);
  EXPECT_TRUE(peer.problems().empty()) << peer.problems().front();
  EXPECT_FALSE(out->handshake_failed);
  EXPECT_TRUE(out->result.host_failed);
  EXPECT_FALSE(out->result.retry_plaintext);
  EXPECT_EQ(out->result.failure.cause, Cause::kTlsHandshake);
  EXPECT_EQ(peer.connections().size(), 1u);
}

TEST(DeliveryClientTest, MayEncryptsWhenStartTlsIsOffered) {
  asio::io_context io;
  const PeerTls tls = MakePeerTls();
  ScriptedPeer peer(
      io, {Concat({{kGreeting, kEhloStartTls, kStartTls, kEhlo}, Transaction(), {kQuit}})},
      tls.context);
  const auto m = Message({"good@peer.test"});
  const std::string content = "Subject: x\r\n\r\nbody\r\n";
  const ClientRequest req = Request(peer, &m, &content);
  ASSERT_TRUE(req.tls_context);
  const auto res = RunClient(io, peer, DeliverOverSmtp(req));
  ASSERT_TRUE(res);
  EXPECT_TRUE(peer.problems().empty()) << peer.problems().front();
  EXPECT_FALSE(res->host_failed) << res->failure.text;
  ASSERT_TRUE(res->verdict);
  EXPECT_EQ(res->verdict->kind, tls::Verdict::Kind::kUntrusted);  // self-signed, not checked
  ASSERT_EQ(res->recipients.size(), 1u);
  EXPECT_EQ(res->recipients[0].state, RecipientState::kDelivered);
  ASSERT_EQ(peer.connections().size(), 1u);
  const auto& c = peer.connections()[0];
  EXPECT_TRUE(c.tls_error.empty()) << c.tls_error;
  // RFC 3207 §4.2: EHLO again over TLS before the transaction.
  ASSERT_GE(c.commands.size(), 4u);
  EXPECT_EQ(c.commands[1], "STARTTLS");
  EXPECT_EQ(c.commands[2], "EHLO relay.test");
  EXPECT_EQ(c.messages.size(), 1u);
}

TEST(DeliveryClientTest, DaneVerifiesTheCertificateAgainstTheTlsaRecords) {
  asio::io_context io;
  const PeerTls tls = MakePeerTls();
  ScriptedPeer peer(
      io, {Concat({{kGreeting, kEhloStartTls, kStartTls, kEhlo}, Transaction(), {kQuit}})},
      tls.context);
  const auto m = Message({"good@peer.test"});
  const std::string content = "Subject: x\r\n\r\nbody\r\n";
  ClientRequest req = Request(peer, &m, &content);
  req.tls = tls::Requirement::kDane;
  req.dane = tls::DaneSetup{"mx.peer.test", {"mx.peer.test"}, {tls.tlsa}};
  const auto res = RunClient(io, peer, DeliverOverSmtp(req));
  ASSERT_TRUE(res);
  EXPECT_TRUE(peer.problems().empty()) << peer.problems().front();
  EXPECT_FALSE(res->host_failed) << res->failure.text;
  ASSERT_TRUE(res->verdict);
  EXPECT_EQ(res->verdict->kind, tls::Verdict::Kind::kVerified) << res->verdict->reason;
  EXPECT_EQ(res->verdict->matched_tlsa, tls.tlsa.ToString());
  ASSERT_EQ(res->recipients.size(), 1u);
  EXPECT_EQ(res->recipients[0].state, RecipientState::kDelivered);
}

TEST(DeliveryClientTest, DaneFailsTheHostWhenNoTlsaRecordMatches) {
  asio::io_context io;
  const PeerTls tls = MakePeerTls();
  ScriptedPeer peer(io, {{kGreeting, kEhloStartTls, kStartTls, kQuit}}, tls.context);
  const auto m = Message({"good@peer.test"});
  const std::string content = "Subject: x\r\n\r\nbody\r\n";
  ClientRequest req = Request(peer, &m, &content);
  req.tls = tls::Requirement::kDane;
  dns::TlsaRecord other = tls.tlsa;
  other.data[0] ^= 0xff;
  req.dane = tls::DaneSetup{"mx.peer.test", {"mx.peer.test"}, {other}};
  const auto res = RunClient(io, peer, DeliverOverSmtp(req));
  ASSERT_TRUE(res);
  EXPECT_TRUE(peer.problems().empty()) << peer.problems().front();
  EXPECT_TRUE(res->host_failed);
  EXPECT_FALSE(res->retry_plaintext);
  EXPECT_EQ(res->failure.cause, Cause::kDaneNotVerified);
  EXPECT_EQ(res->failure.status, "4.7.5");
  EXPECT_TRUE(res->recipients.empty());
  ASSERT_EQ(peer.connections().size(), 1u);
  EXPECT_TRUE(peer.connections()[0].messages.empty());
}

asio::awaitable<std::pair<ClientResult, ClientResult>> Twice(const ClientRequest* req,
                                                             ConnectionCache* cache) {
  ClientResult first = co_await DeliverOverSmtp(*req, cache);
  ClientResult second = co_await DeliverOverSmtp(*req, cache);
  co_return std::pair{std::move(first), std::move(second)};
}

TEST(DeliveryClientTest, TheCacheCarriesTheNextMessageOverTheSameConnection) {
  asio::io_context io;
  const PeerStep rset{"RSET", {"250 2.0.0 reset"}};
  ScriptedPeer peer(io,
                    {Concat({{kGreeting, kEhlo}, Transaction(), {rset}, Transaction(), {rset}})});
  ConnectionCache cache(std::chrono::seconds(60));
  const auto m = Message({"good@peer.test"});
  const std::string content = "Subject: x\r\n\r\nbody\r\n";
  const ClientRequest req = Request(peer, &m, &content);
  const auto out = RunClient(io, peer, Twice(&req, &cache));
  ASSERT_TRUE(out);
  EXPECT_TRUE(peer.problems().empty()) << peer.problems().front();
  for (const ClientResult* r : {&out->first, &out->second}) {
    EXPECT_FALSE(r->host_failed);
    ASSERT_EQ(r->recipients.size(), 1u);
    EXPECT_EQ(r->recipients[0].state, RecipientState::kDelivered);
  }
  EXPECT_EQ(out->second.connect_time, std::chrono::steady_clock::duration::zero());
  ASSERT_EQ(peer.connections().size(), 1u);
  const auto& c = peer.connections()[0];
  EXPECT_EQ(c.messages.size(), 2u);
  EXPECT_EQ(
      c.commands,
      (std::vector<std::string>{
          "EHLO relay.test", "MAIL FROM:<sender@example.org>", "RCPT TO:<good@peer.test>", "DATA",
          "RSET", "MAIL FROM:<sender@example.org>", "RCPT TO:<good@peer.test>", "DATA", "RSET"}));
}

TEST(DeliveryClientTest, MessagesPerConnectionEndsACachedConnectionWithQuit) {
  asio::io_context io;
  // messages_per_connection = 1: each message on its own connection, QUIT instead of RSET.
  ScriptedPeer peer(io, {Concat({{kGreeting, kEhlo}, Transaction(), {kQuit}}),
                         Concat({{kGreeting, kEhlo}, Transaction(), {kQuit}})});
  ConnectionCache cache(std::chrono::seconds(60));
  const auto m = Message({"good@peer.test"});
  const std::string content = "Subject: x\r\n\r\nbody\r\n";
  ClientRequest req = Request(peer, &m, &content);
  req.messages_per_connection = 1;
  const auto out = RunClient(io, peer, Twice(&req, &cache));
  ASSERT_TRUE(out);
  EXPECT_TRUE(peer.problems().empty()) << peer.problems().front();
  for (const ClientResult* r : {&out->first, &out->second}) {
    ASSERT_EQ(r->recipients.size(), 1u);
    EXPECT_EQ(r->recipients[0].state, RecipientState::kDelivered);
  }
  ASSERT_EQ(peer.connections().size(), 2u);
  for (const auto& c : peer.connections()) {
    EXPECT_EQ(c.messages.size(), 1u);
    EXPECT_EQ(c.commands.back(), "QUIT");
  }
}

// Two messages, with the cache swept between them, and the second one to `second`.
asio::awaitable<std::pair<ClientResult, ClientResult>> TwiceWithSweep(const ClientRequest* first,
                                                                      const ClientRequest* second,
                                                                      ConnectionCache* cache) {
  ClientResult a = co_await DeliverOverSmtp(*first, cache);
  cache->Sweep(co_await asio::this_coro::executor);
  ClientResult b = co_await DeliverOverSmtp(*second, cache);
  co_return std::pair{std::move(a), std::move(b)};
}

struct CacheCase {
  const char* name;
  std::chrono::seconds idle_limit;
  bool other_host;  // the second message goes to another MX host name (another cache key)
  bool peer_drops;  // the peer closes the connection after its reply to RSET
  bool reused;      // the second message goes over the first connection
};

const PeerStep kRset{"RSET", {"250 2.0.0 reset"}};

TEST(ConnectionCacheTest, ReuseIdleLimitKeyAndADroppedConnection) {
  const CacheCase cases[] = {
      {"kept within the idle limit", std::chrono::seconds(60), false, false, true},
      {"swept at the idle limit", std::chrono::seconds(0), false, false, false},
      {"another key", std::chrono::seconds(60), true, false, false},
      {"dropped by the server while idle", std::chrono::seconds(60), false, true, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    asio::io_context io;
    PeerStep rset = kRset;
    rset.close_after = c.peer_drops;
    std::vector<PeerScript> scripts;
    if (c.reused) {
      scripts = {Concat({{kGreeting, kEhlo}, Transaction(), {rset}, Transaction(), {kRset}})};
    } else if (c.idle_limit.count() == 0) {
      scripts = {Concat({{kGreeting, kEhlo}, Transaction(), {rset, kQuit}}),
                 Concat({{kGreeting, kEhlo}, Transaction(), {kRset}})};
    } else {
      scripts = {Concat({{kGreeting, kEhlo}, Transaction(), {rset}}),
                 Concat({{kGreeting, kEhlo}, Transaction(), {kRset}})};
    }
    ScriptedPeer peer(io, scripts);
    ConnectionCache cache(c.idle_limit);
    const auto m = Message({"good@peer.test"});
    const std::string content = "Subject: x\r\n\r\nbody\r\n";
    const ClientRequest first = Request(peer, &m, &content);
    ClientRequest second = first;
    if (c.other_host) second.mx_host = "mx2.peer.test";
    const auto out = RunClient(io, peer, TwiceWithSweep(&first, &second, &cache));
    ASSERT_TRUE(out);
    for (const ClientResult* r : {&out->first, &out->second}) {
      ASSERT_EQ(r->recipients.size(), 1u);
      EXPECT_EQ(r->recipients[0].state, RecipientState::kDelivered) << r->recipients[0].reply;
    }
    ASSERT_EQ(peer.connections().size(), c.reused ? 1u : 2u);
    EXPECT_EQ(peer.connections()[0].messages.size(), c.reused ? 2u : 1u);
    EXPECT_EQ(out->second.connect_time == std::chrono::steady_clock::duration::zero(), c.reused);
    // A swept session is ended with QUIT (it got there before the second message's end).
    EXPECT_EQ(peer.connections()[0].commands.back() == "QUIT", c.idle_limit.count() == 0);
  }
}

TEST(DeliveryClientTest, APeerGreetingWithOurOwnNameIsALoop) {
  asio::io_context io;
  ScriptedPeer peer(io, {{{"", {"220 Relay.Test ESMTP"}}, kQuit}});
  const auto m = Message({"good@peer.test"});
  const std::string content = "Subject: x\r\n\r\nbody\r\n";
  const ClientRequest req = Request(peer, &m, &content);
  const auto res = RunClient(io, peer, DeliverOverSmtp(req));
  ASSERT_TRUE(res);
  EXPECT_TRUE(peer.problems().empty()) << peer.problems().front();
  EXPECT_TRUE(res->host_failed);
  EXPECT_TRUE(res->loops_back);
  EXPECT_EQ(res->failure.cause, Cause::kLoop);
  EXPECT_EQ(res->failure.status, "5.4.6");
  EXPECT_EQ(peer.connections()[0].commands, (std::vector<std::string>{"QUIT"}));
}

TEST(DeliveryClientTest, APeerAnsweringEhloWithOurOwnNameIsALoop) {
  asio::io_context io;
  ScriptedPeer peer(
      io, {{kGreeting, {"EHLO relay.test", {"250-relay.test", "250 PIPELINING"}}, kQuit}});
  const auto m = Message({"good@peer.test"});
  const std::string content = "Subject: x\r\n\r\nbody\r\n";
  const ClientRequest req = Request(peer, &m, &content);
  const auto res = RunClient(io, peer, DeliverOverSmtp(req));
  ASSERT_TRUE(res);
  EXPECT_TRUE(peer.problems().empty()) << peer.problems().front();
  EXPECT_TRUE(res->loops_back);
  EXPECT_EQ(res->failure.cause, Cause::kLoop);
  EXPECT_EQ(res->failure.status, "5.4.6");
}

// The peer itself: a command against the script is reported, answered 503 and the connection
// closed, so that a test cannot pass on a conversation it did not script.
TEST(ScriptedPeerTest, ReportsACommandAgainstTheScript) {
  asio::io_context io;
  ScriptedPeer peer(io, {{kGreeting, {"HELO relay.test", {"250 mx.peer.test"}}, kQuit}});
  const auto m = Message({"good@peer.test"});
  const std::string content = "Subject: x\r\n\r\nbody\r\n";
  const ClientRequest req = Request(peer, &m, &content);
  const auto res = RunClient(io, peer, DeliverOverSmtp(req));
  ASSERT_TRUE(res);
  ASSERT_EQ(peer.problems().size(), 1u);
  EXPECT_NE(peer.problems()[0].find("EHLO relay.test"), std::string::npos);
  EXPECT_TRUE(res->host_failed);
  EXPECT_EQ(res->failure.cause, Cause::kRefused);
}

TEST(ScriptedPeerTest, UnstuffUndoesLeadingDots) {
  EXPECT_EQ(Unstuff("..a\r\nb.\r\n...c\r\n"), ".a\r\nb.\r\n..c\r\n");
}

}  // namespace
}  // namespace danerelay::relay
