#include "relay/tlsrpt/tls_report.hpp"

#include <gtest/gtest.h>
#include <zlib.h>
#include <nlohmann/json.hpp>

#include <set>

#include "relay/smtp/sasl.hpp"

namespace danerelay::relay {
namespace {

// A session as delivery records it: `tlsa` the host's TLSA record (policy "tlsa"), `sts` the id
// of the MTA-STS policy applied (policy "sts"), neither: no policy. The texts for people are set
// to words that would mislead a report read from them.
queue::AttemptRecord Session(std::string mx, std::string verdict, std::string reply,
                             std::string tlsa = "", std::string sts = "",
                             std::string result_type = "") {
  queue::AttemptRecord a;
  a.mx_host = std::move(mx);
  a.ip = "192.0.2.1";
  a.sending_ip = "198.51.100.7";
  a.tls_verdict = std::move(verdict);
  a.reply = std::move(reply);
  a.dnssec_tlsa = "secure: 3 1 1 FF";
  a.mta_sts = "no policy: sts-policy-invalid: (text for people), DANE applies";
  a.policy_type = !tlsa.empty() ? "tlsa" : !sts.empty() ? "sts" : "no-policy-found";
  if (!tlsa.empty()) a.tlsa_policy = {std::move(tlsa)};
  a.sts_policy_id = std::move(sts);
  a.result_type = std::move(result_type);
  return a;
}

// The result type is what the attempt recorded where the failure happened; the text beside it
// (for people) does not count, whatever it says.
TEST(TlsReportTest, ResultTypeIsTheRecordedTypeNotTheText) {
  EXPECT_EQ(ResultType(Session("mx", "none", "anything", "", "", "starttls-not-supported")),
            "starttls-not-supported");
  EXPECT_EQ(ResultType(Session("mx", "Untrusted", "certificate has expired (hostname mismatch)", "",
                               "", "validation-failure")),
            "validation-failure");
  EXPECT_EQ(ResultType(Session("mx", "none", "mx: mandatory DANE: no usable TLSA records (bogus)")),
            "");
  EXPECT_EQ(ResultType(Session("mx", "Verified", "550 5.1.1 no such user")), "");
}

// What each failure cause reports as (RFC 8460 §4.3), and that OpenSSL's more specific
// certificate verdicts are the TLS client's to add (queue::ResultType does not guess them).
TEST(TlsReportTest, ResultTypesOfTheCauses) {
  using queue::Cause;
  EXPECT_EQ(queue::ResultType(Cause::kStartTlsNotOffered), "starttls-not-supported");
  EXPECT_EQ(queue::ResultType(Cause::kStartTlsRefused), "starttls-not-supported");
  EXPECT_EQ(queue::ResultType(Cause::kStsNotTrusted), "certificate-not-trusted");
  EXPECT_EQ(queue::ResultType(Cause::kDaneNotVerified), "validation-failure");
  EXPECT_EQ(queue::ResultType(Cause::kTlsHandshake), "validation-failure");
  EXPECT_EQ(queue::ResultType(Cause::kStsMxMismatch), "validation-failure");
  EXPECT_EQ(queue::ResultType(Cause::kTlsaUnusable), "tlsa-invalid");
  EXPECT_EQ(queue::ResultType(Cause::kDaneRequired), "dane-required");
  EXPECT_EQ(queue::ResultType(Cause::kDnssecInvalid), "dnssec-invalid");
  EXPECT_EQ(queue::ResultType(Cause::kConnect), "");
  EXPECT_EQ(queue::ResultType(Cause::kRemoteReply), "");
  EXPECT_EQ(queue::ResultType(Cause::kDns), "");
}

TEST(TlsReportTest, OneEntryPerPolicyWithCountsAndDetails) {
  const std::vector<queue::AttemptRecord> sessions = {
      Session("mx.a.example", "Verified", "250 ok", "3 1 1 AB"),
      Session("mx.a.example", "Untrusted", "Server certificate not verified (x): mx", "3 1 1 AB",
              "", "validation-failure"),
      Session("mx.a.example", "Trusted", "250 ok", "", "1"),
      Session("mx.a.example", "Trusted", "250 ok", "", "1"),
      Session("mx.a.example", "none", "connect to mx: Connection refused"),  // not counted
  };
  const auto day = queue::TimePoint(std::chrono::seconds(1796169600));  // 2026-12-02 00:00 UTC
  const auto r = BuildTlsReport("a.example", day, sessions,
                                "version: STSv1\nmode: enforce\nmax_age: 86400\nmx: mx.a.example\n",
                                {"Example Org", "mailto:tls@example.org", "relay.example"});
  EXPECT_EQ(r["organization-name"], "Example Org");
  EXPECT_EQ(r["contact-info"], "mailto:tls@example.org");
  EXPECT_EQ(r["date-range"]["start-datetime"], "2026-12-02T00:00:00Z");
  EXPECT_EQ(r["date-range"]["end-datetime"], "2026-12-02T23:59:59Z");
  EXPECT_EQ(r["report-id"], "2026-12-02_a.example@relay.example");
  ASSERT_EQ(r["policies"].size(), 2u);
  // Sorted by their JSON: "sts" before "tlsa".
  const auto& sts = r["policies"][0];
  EXPECT_EQ(sts["policy"]["policy-type"], "sts");
  EXPECT_EQ(sts["policy"]["mx-host"], nlohmann::json::array({"mx.a.example"}));
  EXPECT_EQ(sts["policy"]["policy-string"].size(), 4u);
  EXPECT_EQ(sts["summary"]["total-successful-session-count"], 2);
  EXPECT_EQ(sts["summary"]["total-failure-session-count"], 0);
  EXPECT_FALSE(sts.contains("failure-details"));
  const auto& tlsa = r["policies"][1];
  EXPECT_EQ(tlsa["policy"]["policy-type"], "tlsa");
  EXPECT_EQ(tlsa["policy"]["policy-string"], nlohmann::json::array({"3 1 1 AB"}));
  EXPECT_EQ(tlsa["summary"]["total-successful-session-count"], 1);
  EXPECT_EQ(tlsa["summary"]["total-failure-session-count"], 1);
  const auto& d = tlsa["failure-details"][0];
  EXPECT_EQ(d["result-type"], "validation-failure");
  EXPECT_EQ(d["receiving-mx-hostname"], "mx.a.example");
  EXPECT_EQ(d["receiving-ip"], "192.0.2.1");
  EXPECT_EQ(d["sending-mta-ip"], "198.51.100.7");
  EXPECT_EQ(d["failed-session-count"], 1);
}

// RFC 8460 §4.4 counts sessions: the recipients sent over one connection (one session id) are
// one session, a second connection is another, and rows recorded before sessions were (0) count
// one each.
TEST(TlsReportTest, CountsSessionsNotRecipients) {
  auto ok = Session("mx.s.example", "Verified", "250 ok", "3 1 1 AB");
  auto bad =
      Session("mx.s.example", "Untrusted", "not verified", "3 1 1 AB", "", "validation-failure");
  std::vector<queue::AttemptRecord> sessions;
  for (int rcpt = 0; rcpt < 3; ++rcpt) {  // three recipients over connection 11
    ok.session = 11;
    sessions.push_back(ok);
  }
  ok.session = 12;  // a second connection
  sessions.push_back(ok);
  for (int rcpt = 0; rcpt < 4; ++rcpt) {  // four recipients refused in one failed session
    bad.session = 13;
    sessions.push_back(bad);
  }
  bad.session = 0;  // two old rows
  sessions.push_back(bad);
  sessions.push_back(bad);
  const auto day = queue::TimePoint(std::chrono::seconds(1796169600));
  const auto r = BuildTlsReport("s.example", day, sessions, "", {"o", "c", "h"});
  ASSERT_EQ(r["policies"].size(), 1u);
  const auto& summary = r["policies"][0]["summary"];
  EXPECT_EQ(summary["total-successful-session-count"], 2);
  EXPECT_EQ(summary["total-failure-session-count"], 3);
  ASSERT_EQ(r["policies"][0]["failure-details"].size(), 1u);
  EXPECT_EQ(r["policies"][0]["failure-details"][0]["failed-session-count"], 3);
}

// RFC 8460 §4.4: sending-mta-ip is our end of the failed session's connection; a host passed
// over before any connection (or an attempt from before schema 12) has none to give.
TEST(TlsReportTest, SendingMtaIpIsTheLocalAddressOfTheSession) {
  auto a =
      Session("mx.c.example", "Untrusted", "not verified", "3 1 1 AB", "", "validation-failure");
  auto b = a;
  b.sending_ip = "2001:db8::25";
  auto none =
      Session("mx.c.example", "none", "mandatory DANE: unusable", "3 1 1 AB", "", "tlsa-invalid");
  none.sending_ip.clear();
  none.ip.clear();
  const auto day = queue::TimePoint(std::chrono::seconds(1796169600));
  const auto r = BuildTlsReport("c.example", day, {a, b, none}, "", {"o", "c", "h"});
  ASSERT_EQ(r["policies"].size(), 1u);
  const auto& details = r["policies"][0]["failure-details"];
  ASSERT_EQ(details.size(), 3u);  // one per sending address, and one without
  std::set<std::string> sending;
  for (const auto& d : details) {
    if (d.contains("sending-mta-ip")) sending.insert(d["sending-mta-ip"].get<std::string>());
    if (d["result-type"] == "tlsa-invalid") {
      EXPECT_FALSE(d.contains("sending-mta-ip"));
    }
  }
  EXPECT_EQ(sending, (std::set<std::string>{"198.51.100.7", "2001:db8::25"}));
}

// RFC 8460 §4.4: policy-string is an array of strings; where no policy was found, an empty one
// (Perl's Mail::TLSRPT and other strict parsers want the array).
TEST(TlsReportTest, NoPolicyFoundHasAnEmptyPolicyString) {
  const auto day = queue::TimePoint(std::chrono::seconds(1796169600));
  const auto r = BuildTlsReport("d.example", day, {Session("mx.d.example", "Anonymous", "250 ok")},
                                "", {"o", "c", "h"});
  ASSERT_EQ(r["policies"].size(), 1u);
  const auto& p = r["policies"][0]["policy"];
  EXPECT_EQ(p["policy-type"], "no-policy-found");
  EXPECT_EQ(p["policy-domain"], "d.example");
  ASSERT_TRUE(p.contains("policy-string"));
  EXPECT_EQ(p["policy-string"], nlohmann::json::array());
  EXPECT_FALSE(p.contains("mx-host"));
  EXPECT_EQ(r["policies"][0]["summary"]["total-successful-session-count"], 1);
}

// RFC 8461 §5 / RFC 8460 §4.3: under a testing policy the mail goes through, but what enforce
// would have refused is still a failed session of its type (the delivery records the type);
// a session that was good under the policy counts as successful.
TEST(TlsReportTest, FailuresUnderATestingPolicyAreFailures) {
  const std::string policy = "version: STSv1\nmode: testing\nmax_age: 86400\nmx: mx.t.example\n";
  const std::vector<queue::AttemptRecord> sessions = {
      Session("mx.t.example", "Untrusted", "250 2.0.0 Ok", "", "1", "certificate-host-mismatch"),
      Session("mx.t.example", "none", "250 2.0.0 Ok", "", "1",
              "starttls-not-supported"),  // plain text: no STARTTLS
      Session("mx.other.example", "Trusted", "250 2.0.0 Ok", "", "1",
              "validation-failure"),  // an MX the policy does not name
      Session("mx.t.example", "Trusted", "250 2.0.0 Ok", "", "1"),
  };
  const auto day = queue::TimePoint(std::chrono::seconds(1796169600));
  const auto r = BuildTlsReport("t.example", day, sessions, policy, {"o", "c", "h"});
  ASSERT_EQ(r["policies"].size(), 1u);
  const auto& p = r["policies"][0];
  EXPECT_EQ(p["policy"]["policy-type"], "sts");
  EXPECT_EQ(p["summary"]["total-successful-session-count"], 1);
  EXPECT_EQ(p["summary"]["total-failure-session-count"], 3);
  std::set<std::string> types;
  for (const auto& d : p["failure-details"]) types.insert(d["result-type"].get<std::string>());
  EXPECT_EQ(types, (std::set<std::string>{"certificate-host-mismatch", "starttls-not-supported",
                                          "validation-failure"}));
}

TEST(TlsReportTest, StsPolicyThatCouldNotBeHadIsAFailureOfItsType) {
  queue::AttemptRecord a = Session("mx.b.example", "Anonymous", "250 ok");
  a.policy_type = "sts";  // published, no policy had: no id
  a.sts_problem = "sts-webpki-invalid";
  EXPECT_EQ(ResultType(a), "sts-webpki-invalid");
  a.sts_problem = "sts-policy-invalid";
  EXPECT_EQ(ResultType(a), "sts-policy-invalid");
  const auto day = queue::TimePoint(std::chrono::seconds(1796169600));
  const auto r = BuildTlsReport("b.example", day, {a}, "", {"o", "c", "h"});
  ASSERT_EQ(r["policies"].size(), 1u);
  const auto& p = r["policies"][0];
  EXPECT_EQ(p["policy"]["policy-type"], "sts");
  EXPECT_EQ(p["policy"]["policy-string"], nlohmann::json::array());  // no policy text to show
  EXPECT_EQ(p["summary"]["total-failure-session-count"], 1);
  EXPECT_EQ(p["failure-details"][0]["result-type"], "sts-policy-invalid");
}

// RFC 8460 §4.3.2: fetching the policy failed while the cached one applied: the sessions are
// reported under that policy, as sts-policy-fetch-error failures (a session's own failure
// wins; without a fetch failure the same session is a success).
TEST(TlsReportTest, FetchFailureWhileTheCachedPolicyApplies) {
  const std::string policy = "version: STSv1\nmode: enforce\nmax_age: 86400\nmx: mx.f.example\n";
  auto cached = Session("mx.f.example", "Trusted", "250 ok", "", "7");
  cached.sts_problem = "sts-policy-fetch-error";
  cached.session = 1;
  auto own =
      Session("mx.f.example", "Untrusted", "not trusted", "", "7", "certificate-not-trusted");
  own.sts_problem = "sts-policy-fetch-error";
  own.session = 2;
  auto fresh = Session("mx.f.example", "Trusted", "250 ok", "", "7");
  fresh.session = 3;
  EXPECT_EQ(ResultType(cached), "sts-policy-fetch-error");
  EXPECT_EQ(ResultType(own), "certificate-not-trusted");
  EXPECT_EQ(ResultType(fresh), "");
  const auto day = queue::TimePoint(std::chrono::seconds(1796169600));
  const auto r = BuildTlsReport("f.example", day, {cached, own, fresh}, policy, {"o", "c", "h"});
  ASSERT_EQ(r["policies"].size(), 1u);
  const auto& p = r["policies"][0];
  EXPECT_EQ(p["policy"]["policy-type"], "sts");
  EXPECT_EQ(p["policy"]["policy-string"].size(), 4u);  // the cached policy, shown
  EXPECT_EQ(p["summary"]["total-successful-session-count"], 1);
  EXPECT_EQ(p["summary"]["total-failure-session-count"], 2);
  std::set<std::string> types;
  for (const auto& d : p["failure-details"]) types.insert(d["result-type"].get<std::string>());
  EXPECT_EQ(types, (std::set<std::string>{"sts-policy-fetch-error", "certificate-not-trusted"}));
}

// RFC 8460 §4.3.1: TLSA records none of which is usable (only PKIX-TA/PKIX-EE, or a matching
// type this relay does not support) are reported under the tlsa policy as tlsa-invalid, whether
// the mail then went on under "encrypt" (opportunistic) or was deferred (mandatory).
TEST(TlsReportTest, UnusableTlsaRecordsAreTlsaInvalid) {
  auto encrypt = Session("mx.u.example", "Anonymous", "250 ok", "1 1 1 AB", "", "tlsa-invalid");
  encrypt.session = 1;
  auto deferred = Session("mx.u.example", "none", "deferred", "1 1 1 AB", "", "tlsa-invalid");
  deferred.session = 2;
  deferred.sending_ip.clear();
  const auto day = queue::TimePoint(std::chrono::seconds(1796169600));
  const auto r = BuildTlsReport("u.example", day, {encrypt, deferred}, "", {"o", "c", "h"});
  ASSERT_EQ(r["policies"].size(), 1u);
  const auto& p = r["policies"][0];
  EXPECT_EQ(p["policy"]["policy-type"], "tlsa");
  EXPECT_EQ(p["policy"]["policy-string"], nlohmann::json::array({"1 1 1 AB"}));
  EXPECT_EQ(p["summary"]["total-failure-session-count"], 2);
  for (const auto& d : p["failure-details"]) EXPECT_EQ(d["result-type"], "tlsa-invalid");
}

TEST(TlsReportTest, DomainsAreReportedInALabels) {
  // "\xFF.example" is not UTF-8: no domain, no report.
  const auto got =
      ReportDomains({"B\xC3\xBC"
                     "cher.example",
                     "xn--bcher-kva.example", "example.com", "Example.COM", "\xFF.example"});
  const std::map<std::string, std::vector<std::string>> want = {
      {"example.com", {"example.com", "Example.COM"}},
      {"xn--bcher-kva.example",
       {"B\xC3\xBC"
        "cher.example",
        "xn--bcher-kva.example"}},
  };
  EXPECT_EQ(got, want);
}

// RFC 8460 §5.3: the submitter is the domain the report comes from, as its From: and contact.
TEST(TlsReportTest, SubmitterIsTheSendersDomain) {
  EXPECT_EQ(ReportSubmitter("tls-reports@Example.ORG"), "example.org");
  EXPECT_EQ(ReportSubmitter("postmaster@mx1.example.org"), "mx1.example.org");
  EXPECT_EQ(ReportSubmitter("tlsrpt@b\xC3\xBC"
                            "cher.example"),
            "xn--bcher-kva.example");
}

TEST(TlsRptTxtTest, OneRecordWithRua) {
  EXPECT_EQ(ParseTlsRptTxt({"v=TLSRPTv1; rua=mailto:tls@example.com"}),
            std::vector<std::string>{"mailto:tls@example.com"});
  EXPECT_EQ(ParseTlsRptTxt({"v=spf1 -all",
                            "v=TLSRPTv1;rua=mailto:a@x.example, "
                            "https://r.example/tlsrpt ,ftp://no.example/"}),
            (std::vector<std::string>{"mailto:a@x.example", "https://r.example/tlsrpt"}));
  EXPECT_TRUE(ParseTlsRptTxt({}).empty());
  EXPECT_TRUE(ParseTlsRptTxt({"v=TLSRPTv1"}).empty());                           // no rua
  EXPECT_TRUE(ParseTlsRptTxt({"v=TLSRPTv10; rua=mailto:a@x.example"}).empty());  // other version
  EXPECT_TRUE(
      ParseTlsRptTxt({"v=TLSRPTv1; rua=mailto:a@x.example", "v=TLSRPTv1; rua=mailto:b@x.example"})
          .empty());  // two records: none
}

TEST(TlsRptTxtTest, MailtoAndHttpsUris) {
  EXPECT_EQ(MailtoAddress("mailto:tls%2Brpt@example.com?subject=x"), "tls+rpt@example.com");
  EXPECT_EQ(MailtoAddress("MAILTO:a@b.example"), "a@b.example");
  EXPECT_FALSE(MailtoAddress("mailto:nobody"));
  EXPECT_FALSE(MailtoAddress("mailto:a@b.example,c@d.example"));
  EXPECT_FALSE(MailtoAddress("mailto:a%0d%0aBcc:@b.example"));  // no header injection
  EXPECT_FALSE(MailtoAddress("https://x.example/"));
  const auto u = ParseHttpsUri("https://Reports.Example:8443/v1/tlsrpt?k=1#frag");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "reports.example");
  EXPECT_EQ(u->port, 8443);
  EXPECT_EQ(u->path, "/v1/tlsrpt?k=1");
  const auto bare = ParseHttpsUri("https://r.example");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->port, 443);
  EXPECT_EQ(bare->path, "/");
  EXPECT_FALSE(ParseHttpsUri("http://r.example/"));
  EXPECT_FALSE(ParseHttpsUri("https://user@r.example/"));
  EXPECT_FALSE(ParseHttpsUri("https://r.example:99999/"));
  EXPECT_FALSE(ParseHttpsUri("https://[::1]/"));
}

std::string Gunzip(const std::string& data) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string out(1 << 20, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  inflateEnd(&z);
  return out;
}

TEST(TlsReportMailTest, Rfc8460Section53) {
  const std::string json = R"({"organization-name":"o","policies":[]})";
  const std::string gz = Gzip(json);
  ASSERT_GE(gz.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(gz[0]), 0x1f);  // gzip magic, not zlib
  EXPECT_EQ(static_cast<unsigned char>(gz[1]), 0x8b);
  EXPECT_EQ(Gunzip(gz), json);

  TlsReportMail m;
  m.from = "postmaster@relay.example";
  m.recipients = {"tls@b.example", "tls2@b.example"};
  m.domain = "b.example";
  m.submitter = "relay.example";
  m.report_id = "2026-12-02_b.example@relay.example";
  m.begin = queue::TimePoint(std::chrono::seconds(1796169600));
  m.end = m.begin + std::chrono::seconds(86399);
  m.gzipped_json = gz;
  m.message_id = "0ABCDEF";
  m.now = m.begin + std::chrono::hours(25);
  const std::string mail = ComposeTlsReportMail(m);
  const auto has = [&](std::string_view s) { return mail.find(s) != std::string::npos; };
  EXPECT_TRUE(mail.starts_with("From: postmaster@relay.example\r\n"));
  EXPECT_TRUE(has("To: tls@b.example,\r\n\ttls2@b.example\r\n"));
  EXPECT_TRUE(
      has("Subject: Report Domain: b.example Submitter: relay.example\r\n Report-ID: "
          "<2026-12-02_b.example@relay.example>\r\n"));
  EXPECT_TRUE(has("TLS-Report-Domain: b.example\r\n"));
  EXPECT_TRUE(has("TLS-Report-Submitter: relay.example\r\n"));
  EXPECT_TRUE(has("Content-Type: multipart/report; report-type=\"tlsrpt\";"));
  EXPECT_TRUE(
      has("Content-Type: application/tlsrpt+gzip;\r\n\t"
          "name=\"relay.example!b.example!1796169600!1796255999.json.gz\""));
  EXPECT_TRUE(has("filename=\"relay.example!b.example!1796169600!1796255999.json.gz\""));
  // The attachment decodes to the gzipped JSON.
  const auto start = mail.find("base64\r\n\r\n") + 10;
  const auto end = mail.find("\r\n\r\n--", start);
  std::string b64 = mail.substr(start, end - start);
  std::erase(b64, '\r');
  std::erase(b64, '\n');
  const auto decoded = DecodeBase64(b64);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(Gunzip(*decoded), json);
  for (size_t pos = 0, nl; (nl = mail.find("\r\n", pos)) != std::string::npos; pos = nl + 2) {
    EXPECT_LE(nl - pos, 78u);
  }
}

}  // namespace
}  // namespace danerelay::relay
