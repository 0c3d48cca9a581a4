#include "relay/policy/dane_policy.hpp"

#include <gtest/gtest.h>

namespace danerelay::relay {
namespace {

using dns::DnssecState;
using S = DnssecState;

dns::TlsaAnswer Tlsa(dns::Rcode rcode, S dnssec, std::vector<dns::TlsaRecord> records = {}) {
  dns::TlsaAnswer a;
  a.rcode = rcode;
  a.dnssec = dnssec;
  a.records = std::move(records);
  return a;
}
const dns::TlsaRecord kEe{3, 1, 1, std::vector<std::uint8_t>(32, 0xab)};
const dns::TlsaRecord kPkixEe{1, 1, 1, std::vector<std::uint8_t>(32, 0xab)};

// One row of relay/DESIGN.md's table: facts, then the outcome in each mode.
struct Row {
  const char* name;
  HostDnsFacts facts;
  int step;
  // "defer 4.4.3", "defer 4.7.5", "may", "encrypt", "dane"
  const char* opportunistic;
  const char* mandatory;
};

std::string Outcome(const PolicyDecision& d) {
  if (d.defer) return "defer " + d.status;
  switch (d.tls) {
    case TlsRequirement::kMay:
      return "may";
    case TlsRequirement::kEncrypt:
      return "encrypt";
    case TlsRequirement::kDane:
      return "dane";
  }
  return "none";
}

HostDnsFacts Facts(S mx, S addr, std::optional<dns::TlsaAnswer> tlsa, bool addr_failed = false) {
  HostDnsFacts f;
  f.mx = mx;
  f.address = addr;
  f.address_failed = addr_failed;
  f.tlsa = std::move(tlsa);
  return f;
}

HostDnsFacts Alias(HostDnsFacts f) {
  f.secure_alias = true;
  return f;
}
HostDnsFacts AliasFailed(HostDnsFacts f) {
  f.alias_failed = true;
  return f;
}

const Row kTable[] = {
    // 1. DNS or DNSSEC error (SERVFAIL, bogus, timeout) for MX, A/AAAA or TLSA: defer | defer
    {"mx_failed", Facts(S::kFailed, S::kSecure, std::nullopt), 1, "defer 4.4.3", "defer 4.4.3"},
    {"mx_bogus", Facts(S::kBogus, S::kSecure, std::nullopt), 1, "defer 4.4.3", "defer 4.4.3"},
    {"address_failed", Facts(S::kSecure, S::kFailed, std::nullopt, true), 1, "defer 4.4.3",
     "defer 4.4.3"},
    {"address_bogus", Facts(S::kSecure, S::kBogus, std::nullopt), 1, "defer 4.4.3", "defer 4.4.3"},
    {"tlsa_servfail", Facts(S::kSecure, S::kSecure, Tlsa(dns::Rcode::kFailed, S::kFailed)), 1,
     "defer 4.4.3", "defer 4.4.3"},
    {"tlsa_bogus", Facts(S::kSecure, S::kSecure, Tlsa(dns::Rcode::kFailed, S::kBogus)), 1,
     "defer 4.4.3", "defer 4.4.3"},
    // 2. MX RRset not DNSSEC-secure: may | defer
    {"mx_insecure", Facts(S::kInsecure, S::kSecure, std::nullopt), 2, "may", "defer 4.7.5"},
    // 3. A/AAAA of the MX host not secure: may | defer
    {"address_insecure", Facts(S::kSecure, S::kInsecure, std::nullopt), 3, "may", "defer 4.7.5"},
    // A secure alias into an unsigned zone: the TLSA records at the alias decide (steps 4-8).
    {"alias_tlsa_usable",
     Alias(Facts(S::kSecure, S::kInsecure, Tlsa(dns::Rcode::kNoError, S::kSecure, {kEe}))), 6,
     "dane", "dane"},
    {"alias_tlsa_nodata",
     Alias(Facts(S::kSecure, S::kInsecure, Tlsa(dns::Rcode::kNoData, S::kSecure))), 4, "may",
     "defer 4.7.5"},
    {"alias_tlsa_failed",
     Alias(Facts(S::kSecure, S::kInsecure, Tlsa(dns::Rcode::kFailed, S::kFailed))), 1,
     "defer 4.4.3", "defer 4.4.3"},
    {"alias_lookup_failed", AliasFailed(Facts(S::kSecure, S::kInsecure, std::nullopt)), 1,
     "defer 4.4.3", "defer 4.4.3"},
    // 4. no TLSA records (secure denial): may | defer
    {"tlsa_nodata", Facts(S::kSecure, S::kSecure, Tlsa(dns::Rcode::kNoData, S::kSecure)), 4, "may",
     "defer 4.7.5"},
    {"tlsa_nxdomain", Facts(S::kSecure, S::kSecure, Tlsa(dns::Rcode::kNxDomain, S::kSecure)), 4,
     "may", "defer 4.7.5"},
    {"tlsa_insecure",
     Facts(S::kSecure, S::kSecure, Tlsa(dns::Rcode::kNoError, S::kInsecure, {kEe})), 4, "may",
     "defer 4.7.5"},
    // 5. TLSA present but none usable for SMTP: encrypt | defer
    {"tlsa_unusable",
     Facts(S::kSecure, S::kSecure, Tlsa(dns::Rcode::kNoError, S::kSecure, {kPkixEe})), 5, "encrypt",
     "defer 4.7.5"},
    // 6-8: usable TLSA: STARTTLS required and the certificate must match, in both modes.
    {"tlsa_usable",
     Facts(S::kSecure, S::kSecure, Tlsa(dns::Rcode::kNoError, S::kSecure, {kPkixEe, kEe})), 6,
     "dane", "dane"},
};

class PolicyTableTest : public ::testing::TestWithParam<Row> {};

TEST_P(PolicyTableTest, BothModes) {
  const Row& row = GetParam();
  const auto opp = Decide(DaneMode::kOpportunistic, row.facts);
  const auto man = Decide(DaneMode::kMandatory, row.facts);
  EXPECT_EQ(Outcome(opp), row.opportunistic);
  EXPECT_EQ(Outcome(man), row.mandatory);
  EXPECT_EQ(opp.step, row.step);
  EXPECT_EQ(man.step, row.step);
  EXPECT_FALSE(opp.reason.empty());
  if (Outcome(opp) == "dane") {
    ASSERT_EQ(opp.usable.size(), 1u);  // the PKIX-EE record is dropped
    EXPECT_EQ(opp.usable[0].usage, 3);
  }
}

INSTANTIATE_TEST_SUITE_P(DesignTable, PolicyTableTest, ::testing::ValuesIn(kTable),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(DescribeAddressTest, NamesTheSecureAlias) {
  EXPECT_EQ(DescribeAddress(Facts(S::kSecure, S::kSecure, std::nullopt)), "secure");
  EXPECT_EQ(DescribeAddress(Facts(S::kSecure, S::kFailed, std::nullopt, true)), "failed");
  EXPECT_EQ(DescribeAddress(Alias(Facts(S::kSecure, S::kInsecure, std::nullopt))),
            "insecure, behind a secure CNAME");
}

TEST(MandatoryDomainsTest, ExactAndSubdomains) {
  const std::vector<std::string> list = {"example.net", ".example.org"};
  EXPECT_TRUE(IsMandatory(list, "example.net"));
  EXPECT_TRUE(IsMandatory(list, "EXAMPLE.NET."));
  EXPECT_FALSE(IsMandatory(list, "sub.example.net"));
  EXPECT_TRUE(IsMandatory(list, "example.org"));
  EXPECT_TRUE(IsMandatory(list, "a.b.example.org"));
  EXPECT_FALSE(IsMandatory(list, "badexample.org"));
  EXPECT_FALSE(IsMandatory(list, "example.com"));
}

}  // namespace
}  // namespace danerelay::relay
