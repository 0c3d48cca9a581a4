#include "relay/outbound/tls_report.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace danerelay::relay {
namespace {

queue::AttemptRecord Session(std::string mx, std::string verdict, std::string reply,
                             std::string tlsa = "", std::string sts = "") {
  queue::AttemptRecord a;
  a.mx_host = std::move(mx);
  a.ip = "192.0.2.1";
  a.tls_verdict = std::move(verdict);
  a.reply = std::move(reply);
  a.dnssec_tlsa = std::move(tlsa);
  a.mta_sts = std::move(sts);
  return a;
}

TEST(TlsReportTest, ResultTypesFromWhatTheAttemptRecorded) {
  EXPECT_EQ(ResultType(Session("mx", "none", "TLS is required, but mx does not offer STARTTLS")),
            "starttls-not-supported");
  EXPECT_EQ(ResultType(Session("mx", "Untrusted",
                               "Server certificate not trusted under the MTA-STS policy "
                               "(hostname mismatch): mx[192.0.2.1]:25")),
            "certificate-host-mismatch");
  EXPECT_EQ(ResultType(Session("mx", "Untrusted",
                               "Server certificate not trusted under the MTA-STS policy "
                               "(self-signed certificate): mx")),
            "certificate-not-trusted");
  EXPECT_EQ(ResultType(Session("mx", "Untrusted",
                               "Server certificate not verified (no TLSA record matched): mx")),
            "validation-failure");
  EXPECT_EQ(ResultType(Session("mx", "none", "mx: mandatory DANE: no usable TLSA records")),
            "tlsa-invalid");
  EXPECT_EQ(ResultType(Session("mx", "none", "mx: mandatory DANE: no TLSA records")),
            "dane-required");
  EXPECT_EQ(ResultType(Session("", "none", "lookup failed ... (bogus)")), "dnssec-invalid");
  EXPECT_EQ(ResultType(Session("mx", "Verified", "550 5.1.1 no such user")), "");
  EXPECT_EQ(ResultType(Session("mx", "none", "connect to mx: Connection refused")), "");
}

TEST(TlsReportTest, OneEntryPerPolicyWithCountsAndDetails) {
  const std::vector<queue::AttemptRecord> sessions = {
      Session("mx.a.example", "Verified", "250 ok", "secure: 3 1 1 AB"),
      Session("mx.a.example", "Untrusted", "Server certificate not verified (x): mx",
              "secure: 3 1 1 AB"),
      Session("mx.a.example", "Trusted", "250 ok", "", "enforce id=1"),
      Session("mx.a.example", "Trusted", "250 ok", "", "enforce id=1 (cached)"),
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
  EXPECT_EQ(d["failed-session-count"], 1);
}

}  // namespace
}  // namespace danerelay::relay
