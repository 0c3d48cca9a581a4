#include "queue/notice.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "queue/message_test_util.hpp"

namespace danerelay::queue {
namespace {

using std::chrono::hours;
using std::chrono::seconds;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;

// A bounce for a remote 550, every byte as before issue 21 (made by the composer of commit
// fbc8e44): notices about ASCII mail did not change.
TEST(NoticeTest, AsciiBounceForARemoteReplyIsAsBefore) {
  MessageInfo m = OneRecipient("alice@example.org", kNotifyNone);
  m.dsn_envid = "env-1";
  StoredRecipient r = m.recipients[0];
  r.last_status = "5.1.1";
  r.last_reply = "550 5.1.1 <bob@example.net>: no such user";
  r.last_remote = "mx.example.net";
  r.last_reply_remote = true;
  r.last_attempt = kT0 + hours(1);
  const std::string original = "Subject: hello\r\nFrom: alice@example.org\r\n\r\nBody\r\n";
  const NewMessage n = ComposeNotice(NoticeKind::kFailure, m, original, {r}, "B1", kT0 + hours(1),
                                     std::nullopt, NoticeOptions{"relay.test"});
  EXPECT_EQ(n.content,
            "Received: by relay.test (danerelay) id B1; Sun, 22 Nov 2026 09:48:21 +0000\r\n"
            "From: MAILER-DAEMON@relay.test (Mail Delivery System)\r\n"
            "To: <alice@example.org>\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\n"
            "Date: Sun, 22 Nov 2026 09:48:21 +0000\r\n"
            "Message-ID: <B1@relay.test>\r\n"
            "Auto-Submitted: auto-replied\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=delivery-status;\r\n"
            "\tboundary=\"B1.failed/relay.test\"\r\n"
            "\r\n"
            "This is a MIME-encapsulated message.\r\n"
            "\r\n"
            "--B1.failed/relay.test\r\n"
            "Content-Description: Notification\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "\r\n"
            "This is the mail system at host relay.test.\r\n"
            "\r\n"
            "I'm sorry to have to inform you that your message could not be delivered to one or\r\n"
            "more recipients. It is attached below.\r\n"
            "\r\n"
            "<bob@example.net>: The receiving server refused the message.\r\n"
            "    (mx.example.net said: 550 5.1.1 <bob@example.net>: no such user)\r\n"
            "\r\n"
            "--B1.failed/relay.test\r\n"
            "Content-Description: Delivery report\r\n"
            "Content-Type: message/delivery-status\r\n"
            "\r\n"
            "Reporting-MTA: dns; relay.test\r\n"
            "X-Danerelay-Queue-ID: M1\r\n"
            "Original-Envelope-Id: env-1\r\n"
            "Arrival-Date: Sun, 22 Nov 2026 08:48:21 +0000\r\n"
            "\r\n"
            "Final-Recipient: rfc822; bob@example.net\r\n"
            "Original-Recipient: rfc822; bob@example.net\r\n"
            "Action: failed\r\n"
            "Status: 5.1.1\r\n"
            "Remote-MTA: dns; mx.example.net\r\n"
            "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: no such user\r\n"
            "Last-Attempt-Date: Sun, 22 Nov 2026 09:48:21 +0000\r\n"
            "\r\n"
            "--B1.failed/relay.test\r\n"
            "Content-Description: Undelivered Message\r\n"
            "Content-Type: message/rfc822\r\n"
            "\r\n"
            "Subject: hello\r\n"
            "From: alice@example.org\r\n"
            "\r\n"
            "Body\r\n"
            "\r\n"
            "--B1.failed/relay.test--\r\n");
  EXPECT_FALSE(n.body_8bitmime);
  EXPECT_FALSE(n.smtputf8);
  EXPECT_FALSE(n.requiretls);
}

TEST(NoticeTest, BounceForADaneFailure) {
  MessageInfo m = OneRecipient("alice@example.org", kNotifyNone);
  m.dsn_envid = "env-7";
  StoredRecipient r = m.recipients[0];
  r.last_status = "4.7.5";
  r.last_reply = "Server certificate not verified (no matching DANE TLSA records)";
  r.last_cause = Cause::kDaneNotVerified;
  r.last_remote = "mx.example.net";
  r.last_attempt = kT0 + hours(120);
  const std::string original = "Subject: hello\r\nFrom: alice@example.org\r\n\r\nBody\r\n";
  const NewMessage b = ComposeNotice(NoticeKind::kFailure, m, original, {r}, "B1", kT0 + hours(120),
                                     std::nullopt, NoticeOptions{"relay.test"});
  EXPECT_EQ(b.sender, "");
  ASSERT_EQ(b.recipients.size(), 1u);
  EXPECT_EQ(b.recipients[0].address, "alice@example.org");
  EXPECT_THAT(b.content, HasSubstr("report-type=delivery-status"));
  EXPECT_THAT(b.content, HasSubstr("certificate did not match the TLSA records"));
  EXPECT_THAT(b.content, HasSubstr("Reporting-MTA: dns; relay.test\r\n"));
  EXPECT_THAT(b.content, HasSubstr("Original-Envelope-Id: env-7\r\n"));
  EXPECT_THAT(b.content, HasSubstr("Arrival-Date: Sun, 22 Nov 2026 08:48:21 +0000\r\n"));
  EXPECT_THAT(b.content,
              HasSubstr("Final-Recipient: rfc822; bob@example.net\r\n"
                        "Original-Recipient: rfc822; bob@example.net\r\n"
                        "Action: failed\r\nStatus: 4.7.5\r\n"
                        "Diagnostic-Code: X-Danerelay; Server certificate not verified"));
  // Issue 21: mx.example.net was reached, but the failure is our finding, not its reply.
  EXPECT_THAT(b.content, Not(HasSubstr("Remote-MTA")));
  EXPECT_THAT(b.content, Not(HasSubstr("said:")));
  EXPECT_THAT(b.content, HasSubstr("Last-Attempt-Date: Fri, 27 Nov 2026 08:48:21 +0000\r\n"));
  EXPECT_THAT(b.content, HasSubstr("Content-Type: message/rfc822\r\n\r\n" + original));
}

TEST(NoticeTest, HeadersOnlyWhenAskedOrLarge) {
  MessageInfo m = OneRecipient("alice@example.org", kNotifyNone);
  m.dsn_ret = DsnRet::kHdrs;
  StoredRecipient r = m.recipients[0];
  r.last_status = "5.1.1";
  r.last_reply = "550 5.1.1 no such user";
  r.last_reply_remote = true;
  const std::string original = "Subject: secret\r\n\r\nDo not return this body\r\n";
  const NewMessage hdrs = ComposeNotice(NoticeKind::kFailure, m, original, {r}, "B2", kT0,
                                        std::nullopt, {"relay.test"});
  EXPECT_THAT(hdrs.content, HasSubstr("Content-Type: text/rfc822-headers"));
  EXPECT_THAT(hdrs.content, Not(HasSubstr("Do not return this body")));
  EXPECT_THAT(hdrs.content, HasSubstr("Diagnostic-Code: smtp; 550 5.1.1 no such user"));
  m.dsn_ret = DsnRet::kUnspecified;
  const std::string big = "Subject: big\r\n\r\n" + std::string(60000, 'x') + "\r\n";
  const NewMessage large =
      ComposeNotice(NoticeKind::kFailure, m, big, {r}, "B3", kT0, std::nullopt, {"relay.test"});
  EXPECT_THAT(large.content, HasSubstr("Content-Type: text/rfc822-headers"));
  EXPECT_LT(large.content.size(), 5000u);
}

TEST(NoticeTest, RequireTlsMessagesComeBackWithoutTheirBodyUnderRequireTls) {
  // RFC 8689 §5: the notice of a REQUIRETLS message is sent with REQUIRETLS, and its body
  // stays out of it.
  MessageInfo m = OneRecipient("alice@example.org", kNotifyNone);
  m.requiretls = true;
  StoredRecipient r = m.recipients[0];
  r.last_status = "5.7.30";
  r.last_reply = "REQUIRETLS: mx.example.net does not offer REQUIRETLS";
  const std::string original = "Subject: private\r\n\r\nThe confidential body\r\n";
  const NewMessage n = ComposeNotice(NoticeKind::kFailure, m, original, {r}, "B5", kT0,
                                     std::nullopt, {"relay.test"});
  EXPECT_THAT(n.content, HasSubstr("Content-Type: text/rfc822-headers"));
  EXPECT_THAT(n.content, HasSubstr("Subject: private"));
  EXPECT_THAT(n.content, Not(HasSubstr("The confidential body")));
  EXPECT_THAT(n.content, HasSubstr("Status: 5.7.30"));
  EXPECT_THAT(n.content, HasSubstr("does not support REQUIRETLS"));
  EXPECT_THAT(n.content, Not(HasSubstr("Remote-MTA")));
  EXPECT_TRUE(n.requiretls);
  m.requiretls = false;
  EXPECT_FALSE(
      ComposeNotice(NoticeKind::kFailure, m, original, {r}, "B5", kT0, std::nullopt, {"relay.test"})
          .requiretls);
}

TEST(NoticeTest, LargeMessageWithoutABlankLineComesBackBounded) {
  // Issue 9: a message without a blank line is all header; it used to come back whole.
  MessageInfo m = OneRecipient("alice@example.org", kNotifyNone);
  StoredRecipient r = m.recipients[0];
  r.last_status = "5.1.1";
  std::string all_header;
  for (int i = 0; i < 4000; ++i) all_header += "X-Filler-" + std::to_string(i) + ": yyyyyyyy\r\n";
  const NewMessage n = ComposeNotice(NoticeKind::kFailure, m, all_header, {r}, "B4", kT0,
                                     std::nullopt, {"relay.test"});
  EXPECT_THAT(n.content, HasSubstr("Content-Type: text/rfc822-headers"));
  EXPECT_LT(n.content.size(), 50000u + 5000u);
  EXPECT_THAT(n.content, HasSubstr("X-Filler-0: yyyyyyyy\r\n"));
  // Cut at a line end: the part ends with a whole header line, then the closing boundary.
  EXPECT_THAT(n.content, ContainsRegex("yyyyyyyy\r\n\r\n--B4.failed/relay.test--\r\n$"));
}

TEST(NoticeTest, StringsFromOutsideCannotAddHeadersOrParts) {
  // Issue 9: ENVID and ORCPT stored before they were checked at MAIL/RCPT, and a remote reply
  // with an inner CR, must not put lines of their own into the delivery-status part.
  MessageInfo m = OneRecipient("alice@example.org", kNotifyNone);
  m.dsn_envid = "e\r\nX-Injected: 1\r\n--boundary\r\n.\r\n";
  StoredRecipient r = m.recipients[0];
  r.orcpt = "rfc822;b\r\nX-Orcpt-Injected: 1";
  r.last_status = "5.1.1";
  r.last_reply = "550 5.1.1 no\rX-Reply-Injected: 1\n\xff";
  r.last_remote = "mx\r\nX-Remote-Injected: 1";
  r.last_reply_remote = true;
  const NewMessage n = ComposeNotice(NoticeKind::kFailure, m, "Subject: x\r\n\r\ny\r\n", {r}, "B5",
                                     kT0, std::nullopt, {"relay.test"});
  for (const char* injected : {"\nX-Injected", "\nX-Orcpt-Injected", "\nX-Reply-Injected",
                               "\nX-Remote-Injected", "\n.\r", "\n--boundary", "\r\r", "\xff"}) {
    EXPECT_EQ(n.content.find(injected), std::string::npos) << injected;
  }
  EXPECT_THAT(n.content,
              HasSubstr("Diagnostic-Code: smtp; 550 5.1.1 no?X-Reply-Injected: 1?\?\r\n"));
  EXPECT_THAT(n.content,
              HasSubstr("Original-Envelope-Id: e?\?X-Injected: 1?\?--boundary?\?.?\?\r\n"));
}

// RFC 5322 §2.1.1: no line of a notice is longer than 998 octets, however long the remote's
// reply and host name.
TEST(NoticeTest, LongRepliesAndHostNamesKeepLinesUnder998Octets) {
  MessageInfo m = OneRecipient("alice@example.org", kNotifyNone);
  StoredRecipient r = m.recipients[0];
  r.last_status = "5.1.1";
  r.last_reply = "550 5.1.1 " + std::string(2000, 'x');
  r.last_remote = std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') +
                  "." + std::string(61, 'd');
  r.last_reply_remote = true;
  const NewMessage n = ComposeNotice(NoticeKind::kFailure, m, "Subject: x\r\n\r\ny\r\n", {r}, "L1",
                                     kT0, std::nullopt, {"relay.test"});
  size_t start = 0;
  for (size_t nl = n.content.find('\n'); nl != std::string::npos;
       start = nl + 1, nl = n.content.find('\n', start)) {
    EXPECT_LE(nl - start, 999u) << n.content.substr(start, 120);  // 998 octets and the CR
  }
  EXPECT_THAT(n.content, HasSubstr(r.last_remote + " said: 550 5.1.1 xxx"));
}

TEST(NoticeTest, Utf8OriginalRecipientStaysSevenBit) {
  // RFC 6533 §3: in a message/delivery-status a utf-8 address is in its xtext form.
  MessageInfo m = OneRecipient("alice@example.org", kNotifyNone);
  StoredRecipient r = m.recipients[0];
  r.orcpt =
      "utf-8;user@b\xC3\xBC"
      "cher.example";
  r.last_status = "5.1.1";
  r.last_reply = "550 5.1.1 no";
  const NewMessage n = ComposeNotice(NoticeKind::kFailure, m, "Subject: x\r\n\r\ny\r\n", {r}, "B6",
                                     kT0, std::nullopt, {"relay.test"});
  EXPECT_THAT(n.content, HasSubstr("Original-Recipient: utf-8; user@b\\x{FC}cher.example\r\n"));
}

TEST(NoticeTest, DelayWarning) {
  MessageInfo m = OneRecipient("alice@example.org", kNotifyDelay);
  StoredRecipient r = m.recipients[0];
  r.last_status = "4.4.1";
  r.last_reply = "connect to mx.example.net[192.0.2.1]:25: Connection refused";
  const NewMessage w = ComposeNotice(NoticeKind::kDelay, m, "Subject: x\r\n\r\ny\r\n", {r}, "W1",
                                     kT0 + hours(4), kT0 + hours(120), {"relay.test"});
  EXPECT_THAT(w.content, HasSubstr("Action: delayed\r\nStatus: 4.4.1\r\n"));
  EXPECT_THAT(w.content, HasSubstr("Will-Retry-Until: Fri, 27 Nov 2026 08:48:21 +0000"));
  EXPECT_THAT(w.content, HasSubstr("Subject: Delayed Mail"));
}

TEST(NoticeTest, ToHeaderWrittenAsTheOptionsSay) {
  MessageInfo m = OneRecipient("alice@example.org", kNotifyFailure);
  m.sender = "info@caf\xc3\xa9.example";
  m.smtputf8 = true;
  StoredRecipient r = m.recipients[0];
  r.last_status = "5.1.1";
  NoticeOptions o{"relay.test"};
  const NewMessage plain = ComposeNotice(NoticeKind::kFailure, m, "Subject: x\r\n\r\ny\r\n", {r},
                                         "N1", kT0, std::nullopt, o);
  EXPECT_THAT(plain.content, HasSubstr("To: <info@caf\xc3\xa9.example>\r\n"));
  o.header_address = [](const std::string&) { return std::string("info@xn--caf-dma.example"); };
  const NewMessage mapped = ComposeNotice(NoticeKind::kFailure, m, "Subject: x\r\n\r\ny\r\n", {r},
                                          "N2", kT0, std::nullopt, o);
  EXPECT_THAT(mapped.content, HasSubstr("To: <info@xn--caf-dma.example>\r\n"));
  EXPECT_EQ(mapped.recipients[0].address, m.sender);  // the envelope is the relay's to write
}

TEST(NoticeTest, DelayWarningForARefusedConnectionNamesNoRemoteMta) {
  // Issue 21: the host was tried, but "Connection refused" is our finding, not its reply.
  MessageInfo m = OneRecipient("alice@example.org", kNotifyDelay);
  StoredRecipient r = m.recipients[0];
  r.last_status = "4.4.1";
  r.last_reply = "connect to mx.example.net[192.0.2.1]:25: Connection refused";
  r.last_remote = "mx.example.net";
  const NewMessage w = ComposeNotice(NoticeKind::kDelay, m, "Subject: x\r\n\r\ny\r\n", {r}, "W2",
                                     kT0 + hours(4), kT0 + hours(120), {"relay.test"});
  EXPECT_THAT(w.content, HasSubstr("Status: 4.4.1\r\nDiagnostic-Code: X-Danerelay; connect to "
                                   "mx.example.net[192.0.2.1]:25: Connection refused\r\n"));
  EXPECT_THAT(w.content, HasSubstr("    (connect to mx.example.net"));
  EXPECT_THAT(w.content, Not(HasSubstr("Remote-MTA")));
  EXPECT_THAT(w.content, Not(HasSubstr("smtp;")));
}

TEST(NoticeTest, RelayedReportNamesTheHopThatAccepted) {
  MessageInfo m = OneRecipient("alice@example.org", kNotifySuccess);
  StoredRecipient r = m.recipients[0];
  r.last_status = "2.0.0";
  r.last_reply = "250 2.0.0 Ok: queued";
  r.last_remote = "mx.example.net";
  r.last_reply_remote = true;
  const NewMessage n = ComposeNotice(NoticeKind::kRelayed, m, "Subject: x\r\n\r\nbody\r\n", {r},
                                     "S1", kT0, std::nullopt, {"relay.test"});
  EXPECT_THAT(n.content, HasSubstr("Action: relayed\r\nStatus: 2.0.0\r\n"
                                   "Remote-MTA: dns; mx.example.net\r\n"
                                   "Diagnostic-Code: smtp; 250 2.0.0 Ok: queued\r\n"));
  EXPECT_THAT(n.content, HasSubstr("Content-Type: text/rfc822-headers\r\n"));
  EXPECT_THAT(n.content, Not(HasSubstr("body")));
}

TEST(NoticeTest, PostmasterCopyGoesToThePostmaster) {
  MessageInfo m = OneRecipient("", kNotifyNone);
  StoredRecipient r = m.recipients[0];
  r.last_status = "5.4.6";
  r.last_reply = "mail for example.net loops back to myself";
  NoticeOptions o{"relay.test"};
  o.postmaster = "postmaster@relay.test";
  const NewMessage n = ComposeNotice(NoticeKind::kFailure, m, "Subject: x\r\n\r\ny\r\n", {r}, "P1",
                                     kT0, std::nullopt, o);
  ASSERT_EQ(n.recipients.size(), 1u);
  EXPECT_EQ(n.recipients[0].address, "postmaster@relay.test");
  EXPECT_THAT(n.content, HasSubstr("Subject: Postmaster Copy: Undelivered Mail\r\n"));
  EXPECT_THAT(n.content, HasSubstr("Diagnostic-Code: X-Danerelay; mail for example.net loops"));
}

// RFC 6533 §6: a bounce of SMTPUTF8 mail is a global one.
TEST(NoticeTest, Smtputf8MailGetsAGlobalNotice) {
  MessageInfo m = OneRecipient("alice@example.org", kNotifyNone);
  m.smtputf8 = true;
  StoredRecipient r = m.recipients[0];
  r.address = "j\xC3\xB6rg@dest.example";
  r.orcpt =
      "utf-8;j\xC3\xB6rg@b\xC3\xBC"
      "cher.example";
  r.last_status = "5.1.1";
  r.last_reply = "550 5.1.1 no such user";
  r.last_remote = "mx.dest.example";
  r.last_reply_remote = true;
  const std::string original =
      "Subject: Gr\xC3\xBC\xC3\x9F"
      "e\r\nFrom: alice@example.org\r\n\r\nBody\r\n";
  const NewMessage n = ComposeNotice(NoticeKind::kFailure, m, original, {r}, "G1", kT0,
                                     std::nullopt, {"relay.test"});
  EXPECT_THAT(n.content,
              HasSubstr("Content-Type: multipart/report; report-type=global-delivery-status;"));
  EXPECT_THAT(n.content, HasSubstr("Content-Type: text/plain; charset=utf-8\r\n"
                                   "Content-Transfer-Encoding: 8bit\r\n\r\n"));
  EXPECT_THAT(n.content, HasSubstr("<j\xC3\xB6rg@dest.example>: The receiving server refused"));
  EXPECT_THAT(n.content, HasSubstr("Content-Type: message/global-delivery-status\r\n"
                                   "Content-Transfer-Encoding: 8bit\r\n\r\n"));
  EXPECT_THAT(n.content, HasSubstr("Final-Recipient: utf-8; j\xC3\xB6rg@dest.example\r\n"
                                   "Original-Recipient: utf-8; j\xC3\xB6rg@b\xC3\xBC"
                                   "cher.example\r\n"));
  EXPECT_THAT(n.content, HasSubstr("Remote-MTA: dns; mx.dest.example\r\n"
                                   "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"));
  EXPECT_THAT(n.content, HasSubstr("Content-Type: message/global\r\n"
                                   "Content-Transfer-Encoding: 8bit\r\n\r\n" +
                                   original));
  EXPECT_THAT(n.content, Not(HasSubstr("message/delivery-status")));
  EXPECT_THAT(n.content, Not(HasSubstr("message/rfc822")));
  // Delivered with SMTPUTF8 and BODY=8BITMIME (smtp_client.cpp).
  EXPECT_TRUE(n.smtputf8);
  EXPECT_TRUE(n.body_8bitmime);
}

TEST(NoticeTest, GlobalNoticeWithHeadersOnly) {
  MessageInfo m = OneRecipient("alice@example.org", kNotifyNone);
  m.smtputf8 = true;
  m.dsn_ret = DsnRet::kHdrs;
  StoredRecipient r = m.recipients[0];
  r.last_status = "4.4.1";
  r.last_reply = "connect to mx.example.net[192.0.2.1]:25: Connection refused";
  r.last_remote = "mx.example.net";
  const NewMessage n = ComposeNotice(NoticeKind::kDelay, m, "Subject: x\r\n\r\nsecret\r\n", {r},
                                     "G2", kT0, kT0 + hours(120), {"relay.test"});
  // All ASCII: global types, but nothing 8-bit to label.
  EXPECT_THAT(n.content, HasSubstr("Content-Type: message/global-delivery-status\r\n\r\n"));
  EXPECT_THAT(n.content, HasSubstr("Final-Recipient: rfc822; bob@example.net\r\n"));
  EXPECT_THAT(n.content, HasSubstr("Content-Type: message/global-headers\r\n\r\nSubject: x\r\n"));
  EXPECT_THAT(n.content, Not(HasSubstr("secret")));
  EXPECT_THAT(n.content, Not(HasSubstr("Remote-MTA")));
  EXPECT_TRUE(n.smtputf8);
  EXPECT_FALSE(n.body_8bitmime);
}

TEST(NoticeTest, Utf8AddressesInAGlobalNoticeCannotAddLines) {
  MessageInfo m = OneRecipient("alice@example.org", kNotifyNone);
  m.smtputf8 = true;
  StoredRecipient r = m.recipients[0];
  r.address = "j\xC3\xB6rg\r\nX-Injected: 1@dest.example";
  r.orcpt = "utf-8;x\r\nX-Orcpt-Injected: \xC3\xB6";
  r.last_status = "5.1.1";
  const NewMessage n = ComposeNotice(NoticeKind::kFailure, m, "Subject: x\r\n\r\ny\r\n", {r}, "G3",
                                     kT0, std::nullopt, {"relay.test"});
  EXPECT_EQ(n.content.find("\nX-Injected"), std::string::npos);
  EXPECT_EQ(n.content.find("\nX-Orcpt-Injected"), std::string::npos);
  EXPECT_THAT(n.content,
              HasSubstr("Final-Recipient: utf-8; j\xC3\xB6rg??X-Injected: 1@dest.example\r\n"));
}

// The explanation follows the recorded cause, not the words of the reply beside it: a notice
// whose reply text was reworded (or says something misleading) explains the same.
TEST(NoticeTest, ExplanationFollowsTheCauseNotTheReplyText) {
  EXPECT_THAT(ExplainStatus("4.7.5", Cause::kDaneNotVerified), HasSubstr("TLSA records"));
  EXPECT_THAT(ExplainStatus("4.7.5", Cause::kStartTlsNotOffered),
              HasSubstr("did not offer encryption"));
  EXPECT_THAT(ExplainStatus("4.7.5", Cause::kTlsHandshake), HasSubstr("could not be established"));
  EXPECT_THAT(ExplainStatus("5.0.0", Cause::kOperator), HasSubstr("mail administrator"));
  StoredRecipient r;
  r.address = "bob@example.net";
  r.last_status = "4.7.5";
  r.last_cause = Cause::kDaneNotVerified;
  MessageInfo m = OneRecipient("alice@example.org", kNotifyNone);
  for (const std::string reply : {"STARTTLS by the mail administrator", "reworded: x"}) {
    r.last_reply = reply;
    const NewMessage n = ComposeNotice(NoticeKind::kFailure, m, "Subject: x\r\n\r\ny\r\n", {r},
                                       "G4", kT0, std::nullopt, {"relay.test"});
    EXPECT_THAT(n.content, HasSubstr("TLSA records")) << reply;
    EXPECT_THAT(n.content, HasSubstr("Status: 4.7.5")) << reply;
  }
}

TEST(NoticeTest, RequireTlsStatusesAreExplained) {
  EXPECT_THAT(ExplainStatus("5.7.30", Cause::kRequireTlsNotOffered),
              HasSubstr("does not support REQUIRETLS"));
  EXPECT_THAT(ExplainStatus("5.7.10", Cause::kRequireTlsUnprotected),
              HasSubstr("authenticated by DANE or MTA-STS"));
}

}  // namespace
}  // namespace danerelay::queue
