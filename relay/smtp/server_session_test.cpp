#include "relay/smtp/server_session.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace danerelay::relay {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

struct Transcript {
  std::string output;
  std::vector<std::pair<std::string, std::string>> logins;  // user, password as verified
  std::vector<std::string> checked;                         // senders given to the checks
  std::vector<queue::NewMessage> messages;
  int tls_starts = 0;
  bool closed = false;
};

class SessionTest : public ::testing::Test {
 protected:
  SessionParams Params(bool trusted = true, bool starttls = true) {
    SessionParams p;
    p.hostname = "relay.test";
    p.limits.max_message_size = 10000;
    p.limits.max_recipients = 3;
    p.limits.max_errors = 5;
    p.starttls_offered = starttls;
    p.trusted = trusted;
    p.client_address = "192.0.2.7";
    p.next_queue_id = [this] { return "ID" + std::to_string(++next_id_); };
    p.now = [] { return queue::TimePoint(std::chrono::seconds(1795337301)); };
    return p;
  }

  // Feeds the chunks one after another, doing what the I/O layer would do for each action.
  static void Drive(ServerSession& s, Transcript& run, std::string_view chunk,
                    bool store_ok = true) {
    if (run.closed) return;
    s.Feed(chunk);
    for (;;) {
      const auto action = s.Next();
      if (action == ServerSession::Action::kEnqueue) {
        run.messages.push_back(s.TakeMessage());
        s.EnqueueDone(store_ok);
        continue;
      }
      if (action == ServerSession::Action::kCheckSender) {
        // The one refused sender domain: refused.example.
        run.checked.push_back(s.SenderToCheck());
        std::optional<Refusal> refusal;
        if (run.checked.back().ends_with("@refused.example")) {
          refusal = Refusal{550, "5.1.8", "<" + run.checked.back() + ">: Domain not found"};
        }
        s.SenderChecked(refusal);
        continue;
      }
      if (action == ServerSession::Action::kAuthenticate) {
        // The one account: alice, "secret".
        run.logins.emplace_back(s.AuthUser(), s.TakePassword());
        s.AuthDone(run.logins.back() == std::pair<std::string, std::string>("alice", "secret"));
        continue;
      }
      run.output += s.TakeOutput();
      if (action == ServerSession::Action::kStartTls) {
        ++run.tls_starts;
        s.TlsStarted("TLSv1.3 with cipher TEST (256/256 bits)");
        continue;
      }
      if (action == ServerSession::Action::kClose) run.closed = true;
      return;
    }
  }

  Transcript Talk(std::vector<std::string_view> chunks, SessionParams params) {
    ServerSession s(std::move(params));
    s.Start();
    Transcript run;
    run.output = s.TakeOutput();
    for (auto c : chunks) Drive(s, run, c);
    return run;
  }
  Transcript Talk(std::string_view all) { return Talk({all}, Params()); }

  int next_id_ = 0;
};

constexpr std::string_view kTranscript =
    "EHLO client.example\r\n"
    "MAIL FROM:<alice@example.org> BODY=8BITMIME RET=HDRS ENVID=e1\r\n"
    "RCPT TO:<bob@example.net> NOTIFY=FAILURE,DELAY ORCPT=rfc822;bob@example.net\r\n"
    "RCPT TO:<carol@example.com>\r\n"
    "DATA\r\n"
    "Subject: test\r\n"
    "\r\n"
    "..leading dot\r\n"
    ".\r\n"
    "MAIL FROM:<>\r\n"
    "RCPT TO:<dave@example.org>\r\n"
    "DATA\r\n"
    "second\r\n"
    ".\r\n"
    "QUIT\r\n";

TEST_F(SessionTest, PipelinedTransactionRepliesInOrder) {
  Transcript run = Talk(kTranscript);
  EXPECT_EQ(run.output,
            "220 relay.test ESMTP danerelay\r\n"
            "250-relay.test\r\n"
            "250-PIPELINING\r\n"
            "250-SIZE 10000\r\n"
            "250-STARTTLS\r\n"
            "250-ENHANCEDSTATUSCODES\r\n"
            "250-8BITMIME\r\n"
            "250-DSN\r\n"
            "250 SMTPUTF8\r\n"
            "250 2.1.0 Ok\r\n"
            "250 2.1.5 Ok\r\n"
            "250 2.1.5 Ok\r\n"
            "354 End data with <CR><LF>.<CR><LF>\r\n"
            "250 2.0.0 Ok: queued as ID1\r\n"
            "250 2.1.0 Ok\r\n"
            "250 2.1.5 Ok\r\n"
            "354 End data with <CR><LF>.<CR><LF>\r\n"
            "250 2.0.0 Ok: queued as ID2\r\n"
            "221 2.0.0 Bye\r\n");
  EXPECT_TRUE(run.closed);
  ASSERT_EQ(run.messages.size(), 2u);
  const auto& m = run.messages[0];
  EXPECT_EQ(m.id, "ID1");
  EXPECT_EQ(m.sender, "alice@example.org");
  EXPECT_EQ(m.protocol, "ESMTP");
  EXPECT_TRUE(m.body_8bitmime);
  EXPECT_EQ(m.dsn_ret, queue::DsnRet::kHdrs);
  EXPECT_EQ(m.dsn_envid, "e1");
  ASSERT_EQ(m.recipients.size(), 2u);
  EXPECT_EQ(m.recipients[0].notify, queue::kNotifyFailure | queue::kNotifyDelay);
  EXPECT_EQ(m.recipients[0].orcpt, "rfc822;bob@example.net");
  EXPECT_THAT(m.content, StartsWith("Received: from client.example (unknown [192.0.2.7])\r\n"
                                    "\tby relay.test (danerelay) with ESMTP id ID1; "));
  EXPECT_THAT(m.content, HasSubstr("+0000\r\nSubject: test\r\n\r\n.leading dot\r\n"));
  EXPECT_EQ(m.content.substr(m.content.find("Subject:")),
            "Subject: test\r\n\r\n.leading dot\r\n");  // unstuffed, terminator removed
  EXPECT_EQ(run.messages[1].sender, "");
  EXPECT_THAT(run.messages[1].content, HasSubstr("for <dave@example.org>;"));
}

// The "for" clause names an IDN recipient with an A-label: the header stays ASCII, so the
// message can go on to a next hop without SMTPUTF8.
TEST_F(SessionTest, ReceivedForClauseUsesALabels) {
  Transcript run = Talk(
      "EHLO client.example\r\n"
      "MAIL FROM:<alice@example.org> SMTPUTF8\r\n"
      "RCPT TO:<info@caf\xc3\xa9.example>\r\n"
      "DATA\r\n"
      "Subject: x\r\n"
      "\r\n"
      "body\r\n"
      ".\r\n"
      "QUIT\r\n");
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_TRUE(run.messages[0].smtputf8);
  EXPECT_EQ(run.messages[0].recipients[0].address, "info@caf\xc3\xa9.example");
  EXPECT_THAT(run.messages[0].content, HasSubstr("for <info@xn--caf-dma.example>;"));
}

TEST_F(SessionTest, InputSplitAtEveryByteBoundaryGivesTheSameResult) {
  const Transcript whole = Talk(kTranscript);
  for (size_t cut = 1; cut < kTranscript.size(); ++cut) {
    next_id_ = 0;
    const Transcript split = Talk({kTranscript.substr(0, cut), kTranscript.substr(cut)}, Params());
    ASSERT_EQ(split.output, whole.output) << "cut at " << cut;
    ASSERT_EQ(split.messages.size(), whole.messages.size()) << "cut at " << cut;
    for (size_t i = 0; i < whole.messages.size(); ++i) {
      ASSERT_EQ(split.messages[i].content, whole.messages[i].content) << "cut at " << cut;
    }
  }
  // And one byte at a time.
  next_id_ = 0;
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < kTranscript.size(); ++i) bytes.push_back(kTranscript.substr(i, 1));
  const Transcript trickle = Talk(bytes, Params());
  EXPECT_EQ(trickle.output, whole.output);
}

TEST_F(SessionTest, OrderOfCommandsIsEnforced) {
  Transcript run = Talk(
      "MAIL FROM:<a@b.example>\r\n"
      "HELO client.example\r\n"
      "RCPT TO:<x@y.example>\r\n"
      "DATA\r\n"
      "MAIL FROM:<a@b.example>\r\n"
      "MAIL FROM:<a@b.example>\r\n"
      "DATA\r\n");
  EXPECT_THAT(run.output, HasSubstr("503 5.5.1 Error: send HELO/EHLO first\r\n"
                                    "250 relay.test\r\n"
                                    "503 5.5.1 Error: need MAIL command\r\n"
                                    "503 5.5.1 Error: need MAIL command\r\n"
                                    "250 2.1.0 Ok\r\n"
                                    "503 5.5.1 Error: nested MAIL command\r\n"
                                    "554 5.5.1 Error: no valid recipients\r\n"));
}

TEST_F(SessionTest, UntrustedClientCannotRelay) {
  Transcript run =
      Talk({"EHLO x.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<victim@c.example>\r\n"
            "DATA\r\n"},
           Params(/*trusted=*/false));
  EXPECT_THAT(run.output, HasSubstr("554 5.7.1 <victim@c.example>: Relay access denied\r\n"
                                    "554 5.5.1 Error: no valid recipients\r\n"));
  EXPECT_TRUE(run.messages.empty());
}

TEST_F(SessionTest, BareLfInDataCannotSmuggleASecondMessage) {
  // The classic smuggling payload: "\n.\n" or "\r\n.\n" must not end the data.
  Transcript run = Talk(
      "EHLO x.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@c.example>\r\nDATA\r\n"
      "Subject: one\r\n\r\nbody\n.\r\nMAIL FROM:<evil@b.example>\r\nRCPT TO:<r@c.example>\r\n"
      "DATA\r\nsmuggled\r\n.\r\nNOOP\r\n");
  EXPECT_TRUE(run.messages.empty());
  EXPECT_THAT(run.output, HasSubstr("354 End data with <CR><LF>.<CR><LF>\r\n"
                                    "550 5.5.2 Error: message contains bare <CR> or <LF>"));
  EXPECT_THAT(run.output, HasSubstr("\r\n250 2.0.0 Ok\r\n"));  // the NOOP after it
  Transcript cr = Talk(
      "EHLO x.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@c.example>\r\nDATA\r\n"
      "a\rb\r\n.\r\n");
  EXPECT_TRUE(cr.messages.empty());
  EXPECT_THAT(cr.output, HasSubstr("550 5.5.2"));
}

TEST_F(SessionTest, BareLfInCommandIsRefused) {
  // Only CRLF ends a command line: one line, one reply (issue 9: it used to be two, 500 + 503,
  // so a peer that splits at bare LF and one that does not would disagree about the commands).
  Transcript run =
      Talk("EHLO x.example\r\nMAIL FROM:<a@b.example>\nRCPT TO:<r@c.example>\r\nNOOP\r\n");
  EXPECT_THAT(run.output, EndsWith("250 SMTPUTF8\r\n"
                                   "500 5.5.2 Error: bare <CR> or <LF> received; lines must end "
                                   "with <CR><LF>\r\n"
                                   "250 2.0.0 Ok\r\n"));
  Transcript cr = Talk("NOOP\rNOOP\r\nNOOP\r\n");
  EXPECT_THAT(cr.output, EndsWith("220 relay.test ESMTP danerelay\r\n500 5.5.2 Error: bare <CR> "
                                  "or <LF> received; lines must end with <CR><LF>\r\n"
                                  "250 2.0.0 Ok\r\n"));
  // Split at every byte, the same.
  const std::string all = "NOOP\nNOOP\r\nNOOP\r\n";
  for (size_t cut = 1; cut < all.size(); ++cut) {
    Transcript split =
        Talk({std::string_view(all).substr(0, cut), std::string_view(all).substr(cut)}, Params());
    EXPECT_EQ(split.output, cr.output) << "cut at " << cut;
  }
}

TEST_F(SessionTest, DotStuffedLineOf998CharactersIsLegal) {
  // RFC 5321 §4.5.2: the stuffed dot is not part of the line; 998 characters after it are fine.
  const std::string line(998, 'd');
  Transcript run = Talk(
      "EHLO x.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@c.example>\r\n"
      "DATA\r\n." +
      line + "\r\n.\r\n");
  ASSERT_EQ(run.messages.size(), 1u) << run.output;
  EXPECT_THAT(run.messages[0].content, EndsWith("\r\n" + line + "\r\n"));
  Transcript over = Talk(
      "EHLO x.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@c.example>\r\n"
      "DATA\r\n.." +
      line + "\r\n.\r\n");
  EXPECT_TRUE(over.messages.empty());
  EXPECT_THAT(over.output, HasSubstr("550 5.6.0"));
}

TEST_F(SessionTest, HeloIsPrintableInReceivedAndLogs) {
  std::string helo = "evil\xff" + std::string(1530, 'h');
  Transcript run = Talk("EHLO " + helo +
                        "\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@c.example>\r\n"
                        "DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n");
  ASSERT_EQ(run.messages.size(), 1u) << run.output;
  const std::string& content = run.messages[0].content;
  const std::string received = content.substr(0, content.find("\r\n"));
  EXPECT_THAT(received, StartsWith("Received: from evil?hhh"));
  EXPECT_LT(received.size(), 300u);
  EXPECT_EQ(received.find('\xff'), std::string::npos);
  EXPECT_EQ(run.messages[0].client_helo.size(), 255u);
}

TEST_F(SessionTest, StartTlsDiscardsBytesBufferedBeforeTheHandshake) {
  // CVE-2011-0411: a MAIL injected after STARTTLS in the same packet must not run inside TLS.
  Transcript run = Talk({"EHLO x.example\r\nSTARTTLS\r\nMAIL FROM:<injected@b.example>\r\n",
                         "EHLO x.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@c.example>\r\n"
                         "DATA\r\nhi\r\n.\r\n"},
                        Params());
  EXPECT_EQ(run.tls_starts, 1);
  EXPECT_THAT(run.output, HasSubstr("220 2.0.0 Ready to start TLS\r\n250-relay.test\r\n"));
  // After TLS the EHLO no longer offers STARTTLS, and the injected MAIL left no trace.
  const auto after = run.output.substr(run.output.find("Ready to start TLS"));
  EXPECT_THAT(after, ::testing::Not(HasSubstr("STARTTLS")));
  EXPECT_THAT(after, ::testing::Not(HasSubstr("nested MAIL")));
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_EQ(run.messages[0].sender, "a@b.example");
  EXPECT_EQ(run.messages[0].protocol, "ESMTPS");
  EXPECT_THAT(run.messages[0].content, HasSubstr("(using TLSv1.3 with cipher TEST"));
}

TEST_F(SessionTest, StartTlsRefusals) {
  Transcript off = Talk({"EHLO x.example\r\nSTARTTLS\r\n"}, Params(true, /*starttls=*/false));
  EXPECT_THAT(off.output, ::testing::Not(HasSubstr("250-STARTTLS")));
  EXPECT_THAT(off.output, HasSubstr("502 5.5.1"));
  Transcript in_tx = Talk("EHLO x.example\r\nMAIL FROM:<a@b.example>\r\nSTARTTLS\r\n");
  EXPECT_THAT(in_tx.output, HasSubstr("503 5.5.1 Error: MAIL transaction in progress"));
}

TEST_F(SessionTest, SizeLimits) {
  Transcript declared = Talk("EHLO x.example\r\nMAIL FROM:<a@b.example> SIZE=10001\r\n");
  EXPECT_THAT(declared.output, HasSubstr("552 5.3.4 Message size exceeds fixed limit"));
  std::string big =
      "EHLO x.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@c.example>\r\nDATA\r\n";
  for (int i = 0; i < 200; ++i) big += std::string(98, 'x') + "\r\n";
  big += ".\r\nNOOP\r\n";
  Transcript actual = Talk(big);
  EXPECT_TRUE(actual.messages.empty());
  EXPECT_THAT(actual.output, HasSubstr("552 5.3.4 Error: message file too big\r\n250 2.0.0 Ok"));
}

// Sessions share one budget of message bytes in memory: a message that does not fit gets 452
// 4.3.1 (try later) instead of growing the daemon without bound, and every byte comes back.
TEST_F(SessionTest, MessagesInMemoryShareOneBudget) {
  ByteBudget budget(3000);
  SessionParams pa = Params(), pb = Params();
  pa.budget = pb.budget = &budget;
  const std::string start =
      "EHLO x.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@c.example>\r\nDATA\r\n";
  std::string body;
  for (int i = 0; i < 20; ++i) body += std::string(98, 'x') + "\r\n";  // 2000 bytes
  ServerSession a(pa), b(pb);
  Transcript ra, rb;
  a.Start();
  b.Start();
  Drive(a, ra, start + body);  // a holds 2000 bytes, its message not yet ended
  EXPECT_EQ(budget.used(), 2000u);
  Drive(b, rb, start + body + ".\r\n");
  EXPECT_THAT(rb.output, HasSubstr("452 4.3.1 Error: insufficient system storage"));
  EXPECT_TRUE(rb.messages.empty());
  Drive(a, ra, ".\r\n");
  ASSERT_EQ(ra.messages.size(), 1u);
  EXPECT_THAT(ra.messages[0].content, HasSubstr(body));
  EXPECT_EQ(budget.used(), 0u);  // given back once queued
  Drive(b, rb, "MAIL FROM:<a@b.example>\r\nRCPT TO:<r@c.example>\r\nDATA\r\n" + body + ".\r\n");
  EXPECT_EQ(rb.messages.size(), 1u);
  EXPECT_EQ(budget.used(), 0u);
  // A session that goes away mid-message gives its bytes back too.
  {
    ServerSession c(pa);
    Transcript rc;
    c.Start();
    Drive(c, rc, start + body);
    EXPECT_EQ(budget.used(), 2000u);
  }
  EXPECT_EQ(budget.used(), 0u);
}

TEST_F(SessionTest, OverlongLines) {
  std::string data =
      "EHLO x.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@c.example>\r\nDATA\r\n";
  data += std::string(1500, 'y') + "\r\n.\r\n";
  Transcript run = Talk(data);
  EXPECT_TRUE(run.messages.empty());
  EXPECT_THAT(run.output, HasSubstr("550 5.6.0 Error: message has a line longer than 998"));
  // The same line arriving in two pieces, cut anywhere near its end (the head is dropped as
  // soon as it is too long): the "." line after it still ends the data.
  for (size_t cut = data.size() - 12; cut < data.size(); ++cut) {
    Transcript split =
        Talk({std::string_view(data).substr(0, cut), std::string_view(data).substr(cut)}, Params());
    EXPECT_THAT(split.output, HasSubstr("550 5.6.0 Error: message has a line longer than 998"))
        << "cut at " << cut;
  }
  Transcript cmd = Talk("NOOP " + std::string(5000, 'z') + "\r\nNOOP\r\n");
  EXPECT_THAT(cmd.output, HasSubstr("500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n"));
}

TEST_F(SessionTest, RecipientLimitAndTooManyErrors) {
  Transcript run = Talk(
      "EHLO x.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<1@c.example>\r\nRCPT "
      "TO:<2@c.example>\r\nRCPT TO:<3@c.example>\r\nRCPT TO:<4@c.example>\r\n");
  EXPECT_THAT(run.output, HasSubstr("452 4.5.3 Error: too many recipients"));
  Transcript errors = Talk("X1\r\nX2\r\nX3\r\nX4\r\nX5\r\nNOOP\r\n");
  EXPECT_THAT(errors.output, HasSubstr("421 4.7.0 relay.test Error: too many errors\r\n"));
  EXPECT_THAT(errors.output, ::testing::Not(HasSubstr("250 2.0.0 Ok")));
  EXPECT_TRUE(errors.closed);
}

TEST_F(SessionTest, QueueFailureIsATemporaryError) {
  ServerSession s(Params());
  s.Start();
  Transcript run;
  Drive(s, run,
        "EHLO x.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@c.example>\r\nDATA\r\nhi\r\n.\r\n",
        /*store_ok=*/false);
  EXPECT_THAT(run.output, HasSubstr("451 4.3.0 Error: queue file write error\r\n"));
}

TEST_F(SessionTest, MiscCommands) {
  Transcript run =
      Talk("EHLO x.example\r\nVRFY bob\r\nEXPN list\r\nHELP\r\nRSET\r\nAUTH PLAIN\r\nQUIT\r\n");
  EXPECT_THAT(run.output, HasSubstr("252 2.0.0 Cannot VRFY user"));
  EXPECT_THAT(run.output, HasSubstr("502 5.5.1 Error: command not implemented"));
  EXPECT_THAT(run.output, HasSubstr("214 2.0.0 "));
  EXPECT_THAT(run.output, HasSubstr("221 2.0.0 Bye\r\n"));
}

}  // namespace
}  // namespace danerelay::relay

namespace danerelay::relay {
namespace {

class AuthTest : public SessionTest {
 protected:
  SessionParams AuthParams() {
    SessionParams p = Params(/*trusted=*/false);
    p.auth_offered = true;
    return p;
  }
  static std::string Plain(std::string_view user, std::string_view password) {
    return EncodeBase64(std::string(1, '\0') + std::string(user) + '\0' + std::string(password));
  }
};

constexpr std::string_view kTls = "EHLO c.example\r\nSTARTTLS\r\n";

TEST_F(AuthTest, OnlyInsideTlsThenTheClientMayRelay) {
  Transcript run = Talk({"EHLO c.example\r\nAUTH PLAIN " + Plain("alice", "secret") + "\r\n",
                         kTls.substr(kTls.find("STARTTLS")), "EHLO c.example\r\n",
                         "AUTH PLAIN " + Plain("alice", "secret") + "\r\n",
                         "MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.net>\r\n"
                         "DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n"},
                        AuthParams());
  // Not offered and refused before TLS; offered and accepted inside it.
  const size_t tls = run.output.find("220 2.0.0 Ready to start TLS");
  ASSERT_NE(tls, std::string::npos);
  EXPECT_EQ(run.output.substr(0, tls).find("AUTH PLAIN LOGIN"), std::string::npos);
  EXPECT_THAT(run.output.substr(0, tls),
              HasSubstr("538 5.7.11 Encryption required for requested authentication mechanism"));
  EXPECT_THAT(run.output.substr(tls), HasSubstr("250-AUTH PLAIN LOGIN\r\n"));
  EXPECT_THAT(run.output.substr(tls), HasSubstr("235 2.7.0 Authentication successful\r\n"
                                                "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"));
  ASSERT_EQ(run.logins.size(), 1u);  // the plain-text attempt never reached verification
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_EQ(run.messages[0].auth_user, "alice");
  EXPECT_EQ(run.messages[0].protocol, "ESMTPSA");
  EXPECT_THAT(run.messages[0].content, HasSubstr("with ESMTPSA id"));
}

TEST_F(SessionTest, RequireTlsOnlyInsideTls) {
  // RFC 8689 §4.1: not offered and refused before STARTTLS; offered and stored inside TLS.
  Transcript run = Talk({"EHLO c.example\r\nMAIL FROM:<a@example.org> REQUIRETLS\r\n",
                         "STARTTLS\r\n", "EHLO c.example\r\n",
                         "MAIL FROM:<a@example.org> REQUIRETLS\r\nRCPT TO:<b@example.net>\r\n"
                         "DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n"},
                        Params());
  const size_t tls = run.output.find("220 2.0.0 Ready to start TLS");
  ASSERT_NE(tls, std::string::npos);
  EXPECT_EQ(run.output.substr(0, tls).find("250-REQUIRETLS"), std::string::npos);
  EXPECT_THAT(run.output.substr(0, tls),
              HasSubstr("530 5.7.10 REQUIRETLS needs a TLS session (STARTTLS first)"));
  EXPECT_THAT(run.output.substr(tls), HasSubstr("250-REQUIRETLS\r\n"));
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_TRUE(run.messages[0].requiretls);
}

TEST_F(AuthTest, UnauthenticatedUntrustedClientStillCannotRelay) {
  Transcript run = Talk({kTls,
                         "EHLO c.example\r\nMAIL FROM:<a@example.org>\r\n"
                         "RCPT TO:<bob@example.net>\r\n"},
                        AuthParams());
  EXPECT_THAT(run.output, HasSubstr("554 5.7.1 <bob@example.net>: Relay access denied"));
}

TEST_F(AuthTest, WrongPasswordLoginCancelAndBadBase64) {
  Transcript run = Talk({kTls, "EHLO c.example\r\nAUTH PLAIN " + Plain("alice", "wrong") +
                                   "\r\nAUTH LOGIN\r\n*\r\nAUTH LOGIN\r\n%%%\r\n"
                                   "AUTH PLAIN =\r\nAUTH LOGIN " +
                                   EncodeBase64("alice") + "\r\n" + EncodeBase64("secret") +
                                   "\r\nAUTH PLAIN " + Plain("alice", "secret") + "\r\n"},
                        AuthParams());
  const std::string after = run.output.substr(run.output.find("250 SMTPUTF8", 300));
  EXPECT_THAT(after, HasSubstr("535 5.7.8 Error: authentication failed\r\n"
                               "334 VXNlcm5hbWU6\r\n"
                               "501 5.0.0 Authentication aborted\r\n"
                               "334 VXNlcm5hbWU6\r\n"
                               "501 5.5.2 Error: invalid base64 data in authentication response\r\n"
                               "535 5.7.8 Error: authentication failed: malformed credentials\r\n"
                               "334 UGFzc3dvcmQ6\r\n"
                               "235 2.7.0 Authentication successful\r\n"
                               "503 5.5.1 Error: already authenticated\r\n"));
  ASSERT_EQ(run.logins.size(), 2u);
  EXPECT_EQ(run.logins[0].second, "wrong");
  EXPECT_EQ(run.logins[1].first, "alice");
}

TEST_F(AuthTest, PipelinedCommandsWaitForTheVerdict) {
  Transcript run = Talk({kTls, "EHLO c.example\r\nAUTH PLAIN " + Plain("alice", "secret") +
                                   "\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n"},
                        AuthParams());
  EXPECT_THAT(run.output, HasSubstr("235 2.7.0 Authentication successful\r\n250 2.1.0 Ok\r\n"
                                    "250 2.1.5 Ok\r\n"));
}

TEST_F(AuthTest, RequireTlsAndSenderBinding) {
  SessionParams p = AuthParams();
  p.require_tls = true;
  p.may_send_as = [](std::string_view user, std::string_view sender) {
    return user == "alice" && (sender.empty() || sender == "alice@example.org");
  };
  Transcript run =
      Talk({"EHLO c.example\r\nMAIL FROM:<alice@example.org>\r\nSTARTTLS\r\n",
            "EHLO c.example\r\nAUTH PLAIN " + Plain("alice", "secret") +
                "\r\nMAIL FROM:<ceo@example.org>\r\nMAIL FROM:<alice@example.org>\r\n"},
           p);
  EXPECT_THAT(run.output, HasSubstr("530 5.7.0 Must issue a STARTTLS command first"));
  EXPECT_THAT(run.output,
              HasSubstr("553 5.7.1 <ceo@example.org>: Sender address rejected: not owned by user "
                        "alice\r\n250 2.1.0 Ok\r\n"));
}

// RFC 4954 §5: AUTH= on MAIL is accepted; the mailbox is kept only when this relay trusts the
// client to assert it (trusted network, or the authenticated user may send as it), else it
// becomes AUTH=<>.
TEST_F(SessionTest, MailAuthParameterFromATrustedNetwork) {
  Transcript run = Talk(
      "EHLO c.example\r\n"
      "MAIL FROM:<a@b.example> AUTH=<>\r\nRCPT TO:<x@example.net>\r\nDATA\r\nSubject: "
      "1\r\n\r\n.\r\n"
      "MAIL FROM:<a@b.example> AUTH=a@b.example\r\nRCPT TO:<x@example.net>\r\n"
      "DATA\r\nSubject: 2\r\n\r\n.\r\n"
      "MAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.net>\r\nDATA\r\nSubject: 3\r\n\r\n.\r\n");
  EXPECT_EQ(run.output.find("555"), std::string::npos) << run.output;
  ASSERT_EQ(run.messages.size(), 3u) << run.output;
  EXPECT_EQ(run.messages[0].mail_auth, std::optional<std::string>(""));
  EXPECT_EQ(run.messages[1].mail_auth, std::optional<std::string>("a@b.example"));
  EXPECT_EQ(run.messages[2].mail_auth, std::nullopt);
}

TEST_F(AuthTest, MailAuthParameterAfterAuthentication) {
  SessionParams p = AuthParams();
  p.may_send_as = [](std::string_view user, std::string_view sender) {
    return user == "alice" && (sender.empty() || sender == "alice@example.org");
  };
  const std::string tx = "RCPT TO:<x@example.net>\r\nDATA\r\nSubject: x\r\n\r\n.\r\n";
  Transcript run =
      Talk({kTls, "EHLO c.example\r\nAUTH PLAIN " + Plain("alice", "secret") +
                      "\r\nMAIL FROM:<alice@example.org> AUTH=alice@example.org\r\n" + tx +
                      "MAIL FROM:<alice@example.org> AUTH=ceo@example.org\r\n" + tx},
           p);
  EXPECT_EQ(run.output.find("555"), std::string::npos) << run.output;
  ASSERT_EQ(run.messages.size(), 2u) << run.output;
  EXPECT_EQ(run.messages[0].mail_auth, std::optional<std::string>("alice@example.org"));
  EXPECT_EQ(run.messages[1].mail_auth, std::optional<std::string>(""));  // not alice's to assert
}

TEST_F(SessionTest, Utf8OrcptIsAcceptedAndStored) {
  // RFC 6533 §3, as Postfix sends it.
  Transcript run = Talk(
      "EHLO c.example\r\nMAIL FROM:<a@example.org> SMTPUTF8\r\n"
      "RCPT TO:<user@b\xC3\xBC"
      "cher.example> NOTIFY=FAILURE ORCPT=utf-8;user@b+C3+BCcher.example\r\n"
      "DATA\r\nSubject: x\r\n\r\n.\r\n");
  ASSERT_EQ(run.messages.size(), 1u) << run.output;
  ASSERT_EQ(run.messages[0].recipients.size(), 1u);
  EXPECT_EQ(run.messages[0].recipients[0].orcpt,
            "utf-8;user@b\xC3\xBC"
            "cher.example");
}

TEST_F(AuthTest, NotOfferedOnThisListener) {
  SessionParams p = Params(false);
  Transcript run =
      Talk({kTls, "EHLO c.example\r\nAUTH PLAIN " + Plain("alice", "secret") + "\r\n"}, p);
  EXPECT_EQ(run.output.find("AUTH PLAIN LOGIN"), std::string::npos);
  EXPECT_THAT(run.output, HasSubstr("503 5.5.1 Error: authentication not enabled"));
  EXPECT_TRUE(run.logins.empty());
}

// MAIL waits for the sender checks (not for <>); a refusal ends the transaction, and
// pipelined commands after it are answered in order.
TEST_F(SessionTest, SenderChecksDecideMailFrom) {
  SessionParams p = Params();
  p.check_sender = true;
  Transcript run = Talk({"EHLO c.example\r\nMAIL FROM:<a@refused.example>\r\n"
                         "RCPT TO:<b@example.net>\r\nMAIL FROM:<a@fine.example>\r\n"
                         "RCPT TO:<b@example.net>\r\nRSET\r\nMAIL FROM:<>\r\n"},
                        p);
  EXPECT_THAT(run.output, HasSubstr("550 5.1.8 <a@refused.example>: Domain not found\r\n"
                                    "503 5.5.1 Error: need MAIL command\r\n"
                                    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n"
                                    "250 2.1.0 Ok\r\n"));
  EXPECT_EQ(run.checked, (std::vector<std::string>{"a@refused.example", "a@fine.example"}));
}

// RFC 4954 §4: AUTH response lines up to 12288 octets; one even longer ends the exchange with
// one error, and the command after it is read as a command.
TEST_F(AuthTest, LongAuthResponsesThenTheNextCommandWorks) {
  const std::string password(8993, 'x');
  const std::string response = Plain("alice", password);
  ASSERT_EQ(response.size(), 12000u);
  Transcript run =
      Talk({kTls, "EHLO c.example\r\nAUTH PLAIN\r\n", response + "\r\n", "NOOP\r\nAUTH PLAIN\r\n",
            std::string(20000, 'A'), "\r\nNOOP\r\n", "AUTH PLAIN " + response + "\r\nNOOP\r\n"},
           AuthParams());
  ASSERT_EQ(run.logins.size(), 2u);
  EXPECT_EQ(run.logins[0].second, password);
  EXPECT_EQ(run.logins[1].second, password);
  EXPECT_THAT(run.output, HasSubstr("334 \r\n535 5.7.8 Error: authentication failed\r\n"
                                    "250 2.0.0 Ok\r\n334 \r\n"
                                    "500 5.5.2 Error: malformed authentication response\r\n"
                                    "250 2.0.0 Ok\r\n"
                                    "535 5.7.8 Error: authentication failed\r\n250 2.0.0 Ok\r\n"));
}

// A client that can never relay is refused at RCPT without its sender being checked.
TEST_F(AuthTest, NoSenderChecksForAClientThatCannotRelay) {
  SessionParams p = AuthParams();
  p.check_sender = true;
  Transcript run = Talk({kTls,
                         "EHLO c.example\r\nMAIL FROM:<a@refused.example>\r\n"
                         "RCPT TO:<b@example.net>\r\nRSET\r\nAUTH PLAIN " +
                             Plain("alice", "secret") + "\r\nMAIL FROM:<a@refused.example>\r\n"},
                        p);
  EXPECT_THAT(run.output, HasSubstr("250 2.1.0 Ok\r\n554 5.7.1 <b@example.net>: Relay access "
                                    "denied\r\n250 2.0.0 Ok\r\n235 2.7.0 Authentication "
                                    "successful\r\n550 5.1.8 <a@refused.example>: Domain not "
                                    "found\r\n"));
  EXPECT_EQ(run.checked, (std::vector<std::string>{"a@refused.example"}));  // after AUTH only
}

class DeadlineTest : public SessionTest {
 protected:
  using T = ServerSession::SteadyTime;
  static constexpr T kStart = T() + std::chrono::hours(1);
  SessionParams DeadlineParams(bool trusted) {
    SessionParams p = Params(trusted);
    p.limits.command_timeout = std::chrono::seconds(10);
    p.limits.data_timeout = std::chrono::seconds(20);
    p.limits.min_data_rate = 100;
    p.limits.untrusted_auth_timeout = std::chrono::seconds(60);
    return p;
  }
  static void Feed(ServerSession& s, std::string_view bytes) {
    s.Feed(bytes);
    ASSERT_EQ(s.Next(), ServerSession::Action::kRead);
    s.TakeOutput();
  }
};

TEST_F(DeadlineTest, ACommandLineIsDueAsAWholeNotPerRead) {
  ServerSession s(DeadlineParams(true));
  s.Start();
  using std::chrono::seconds;
  EXPECT_EQ(s.ReadDeadline(kStart), kStart + seconds(10));
  Feed(s, "E");
  EXPECT_EQ(s.ReadDeadline(kStart + seconds(3)), kStart + seconds(10));  // one byte gains nothing
  Feed(s, "HLO c.example\r\n");
  EXPECT_EQ(s.ReadDeadline(kStart + seconds(5)), kStart + seconds(15));  // the next line's own
  Feed(s, std::string(3000, 'N'));  // too long: dropped as it comes, still the same line
  EXPECT_EQ(s.ReadDeadline(kStart + seconds(6)), kStart + seconds(15));
  s.TimedOut(kStart + seconds(15));
  EXPECT_EQ(s.Next(), ServerSession::Action::kClose);
  EXPECT_THAT(s.TakeOutput(), HasSubstr("421 4.4.2 relay.test Error: timeout exceeded"));
}

TEST_F(DeadlineTest, DataMustKeepTheMinimumRate) {
  ServerSession s(DeadlineParams(true));
  s.Start();
  using std::chrono::seconds;
  s.ReadDeadline(kStart);
  Feed(s, "EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n");
  EXPECT_EQ(s.ReadDeadline(kStart + seconds(1)), kStart + seconds(21));
  Feed(s, std::string(500, 'x'));  // 5 s worth at 100 octets a second
  EXPECT_EQ(s.ReadDeadline(kStart + seconds(11)), kStart + seconds(26));
  Feed(s, std::string(50, 'x'));
  EXPECT_EQ(s.ReadDeadline(kStart + seconds(20)),
            kStart + seconds(26) + std::chrono::milliseconds(500));
  Feed(s, std::string(100000, 'x'));  // never beyond data_timeout from now
  EXPECT_EQ(s.ReadDeadline(kStart + seconds(21)), kStart + seconds(41));
}

TEST_F(DeadlineTest, UntrustedClientsMustAuthenticateInTime) {
  using std::chrono::seconds;
  ServerSession trusted(DeadlineParams(true));
  trusted.Start();
  trusted.ReadDeadline(kStart);
  EXPECT_EQ(trusted.ReadDeadline(kStart + seconds(55)), kStart + seconds(65));

  ServerSession s(DeadlineParams(false));
  s.Start();
  EXPECT_EQ(s.ReadDeadline(kStart), kStart + seconds(10));
  Feed(s, "NOOP\r\n");
  EXPECT_EQ(s.ReadDeadline(kStart + seconds(55)), kStart + seconds(60));
  s.TimedOut(kStart + seconds(60));
  EXPECT_EQ(s.Next(), ServerSession::Action::kClose);
  EXPECT_THAT(s.TakeOutput(), HasSubstr("421 4.7.0 relay.test Error: not authenticated in time"));
}

}  // namespace
}  // namespace danerelay::relay
