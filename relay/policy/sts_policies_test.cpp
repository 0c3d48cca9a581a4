// MTA-STS policies as delivery sees them (RFC 8461 §3, §5.1): the TXT id decides when a policy
// is fetched, a cached policy stays in force while its server fails until max_age ends, and a
// failed fetch is reported with its RFC 8460 result type. DNS is a FakeLookup; the HTTPS fetch
// is a scripted stand-in that records each request.
#include "relay/policy/sts_policies.hpp"

#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "dns/fake_lookup.hpp"

namespace danerelay::relay {
namespace {

using dns::DnssecState;
using dns::FakeLookup;

constexpr char kDomain[] = "example.com";
constexpr char kEnforce[] =
    "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.example.net\r\n"
    "max_age: 86400\r\n";
constexpr char kTesting[] = "version: STSv1\nmode: testing\nmx: mx2.example.com\nmax_age: 86400\n";

// The policy server: what it answers next, and what it was asked (fetches run on the pool).
struct ScriptedServer {
  std::mutex mutex;
  tl::expected<HttpsResponse, HttpsError> next = HttpsResponse{200, "text/plain", kEnforce};
  std::vector<HttpsRequest> requests;

  StsPolicies::HttpsFetch Fetch() {
    return [this](const HttpsRequest& r) {
      std::lock_guard lock(mutex);
      requests.push_back(r);
      return next;
    };
  }
  size_t Count() {
    std::lock_guard lock(mutex);
    return requests.size();
  }
};

class StsPoliciesTest : public ::testing::Test {
 protected:
  StsPoliciesTest() {
    SetId("20260101");
    auto a = FakeLookup::With<dns::AddressAnswer>(DnssecState::kInsecure, "mta-sts.example.com");
    a.addresses = {"192.0.2.10"};
    dns_.addresses[{"mta-sts.example.com", false}] = a;
    options_.fetch_timeout = std::chrono::seconds(5);
  }

  void SetId(const std::string& id) {
    auto txt = FakeLookup::With<dns::TxtAnswer>(DnssecState::kInsecure, "_mta-sts.example.com");
    txt.records = {"v=STSv1; id=" + id};
    dns_.txt["_mta-sts.example.com"] = txt;
  }

  StsLookup Get() {
    std::optional<StsLookup> out;
    io_.restart();
    asio::co_spawn(io_, policies_.Get(kDomain), [&](std::exception_ptr e, StsLookup l) {
      if (e) {
        ADD_FAILURE() << "Get threw";
        return;
      }
      out = std::move(l);
    });
    io_.run_for(std::chrono::seconds(10));
    EXPECT_TRUE(out) << "Get did not finish";
    return out.value_or(StsLookup{});
  }

  asio::io_context io_;
  FakeLookup dns_;
  ScriptedServer server_;
  MtaStsOptions options_;
  StsPolicies policies_{dns_, nullptr, options_, server_.Fetch()};
};

TEST_F(StsPoliciesTest, ANewIdIsFetchedFromTheWellKnownUrl) {
  const StsLookup got = Get();
  ASSERT_TRUE(got.policy);
  EXPECT_FALSE(got.cached);
  EXPECT_EQ(got.problem_type, "");
  EXPECT_EQ(got.policy->id, "20260101");
  EXPECT_EQ(got.policy->mode, sts::Mode::kEnforce);
  EXPECT_EQ(got.policy->mx, (std::vector<std::string>{"mx1.example.com", "*.example.net"}));
  ASSERT_EQ(server_.Count(), 1u);
  EXPECT_EQ(server_.requests[0].host, "mta-sts.example.com");
  EXPECT_EQ(server_.requests[0].path, "/.well-known/mta-sts.txt");
  EXPECT_EQ(server_.requests[0].addresses, (std::vector<std::string>{"192.0.2.10"}));
}

TEST_F(StsPoliciesTest, AnUnchangedIdUsesTheCachedPolicyWithoutFetching) {
  ASSERT_TRUE(Get().policy);
  server_.next = HttpsResponse{200, "text/plain", kTesting};  // would show if it were fetched
  const StsLookup got = Get();
  ASSERT_TRUE(got.policy);
  EXPECT_TRUE(got.cached);
  EXPECT_EQ(got.policy->mode, sts::Mode::kEnforce);
  EXPECT_EQ(server_.Count(), 1u);
}

TEST_F(StsPoliciesTest, AChangedIdFetchesAgainAndTheNewModeApplies) {
  ASSERT_EQ(Get().policy->mode, sts::Mode::kEnforce);
  SetId("20260202");
  server_.next = HttpsResponse{200, "text/plain; charset=utf-8", kTesting};
  const StsLookup got = Get();
  ASSERT_TRUE(got.policy);
  EXPECT_FALSE(got.cached);
  EXPECT_EQ(got.policy->id, "20260202");
  EXPECT_EQ(got.policy->mode, sts::Mode::kTesting);
  EXPECT_EQ(got.policy->mx, (std::vector<std::string>{"mx2.example.com"}));
  EXPECT_EQ(server_.Count(), 2u);
}

struct FailureCase {
  const char* name;
  tl::expected<HttpsResponse, HttpsError> response;
  const char* result_type;  // RFC 8460 §4.3.2
};

const FailureCase kFailures[] = {
    {"connection", tl::unexpected(HttpsError{"connection refused", false, false}),
     "sts-policy-fetch-error"},
    {"certificate", tl::unexpected(HttpsError{"certificate has expired", true, false}),
     "sts-webpki-invalid"},
    {"http_404", HttpsResponse{404, "text/plain", kEnforce}, "sts-policy-fetch-error"},
    {"html", HttpsResponse{200, "text/html", kEnforce}, "sts-policy-invalid"},
    {"unparsable", HttpsResponse{200, "text/plain", "version: STSv2\nmode: enforce\n"},
     "sts-policy-invalid"},
};

TEST_F(StsPoliciesTest, AFailedFetchWithoutCacheGivesNoPolicyAndItsResultType) {
  for (const auto& c : kFailures) {
    SCOPED_TRACE(c.name);
    StsPolicies policies(dns_, nullptr, options_, server_.Fetch());
    server_.next = c.response;
    std::optional<StsLookup> got;
    io_.restart();
    asio::co_spawn(io_, policies.Get(kDomain), [&](std::exception_ptr, StsLookup l) { got = l; });
    io_.run_for(std::chrono::seconds(10));
    ASSERT_TRUE(got);
    EXPECT_FALSE(got->policy);
    EXPECT_FALSE(got->cached);
    EXPECT_EQ(got->problem_type, c.result_type);
    EXPECT_FALSE(got->problem.empty());
  }
}

TEST_F(StsPoliciesTest, AFailedFetchKeepsTheCachedPolicyInForce) {
  ASSERT_TRUE(Get().policy);
  SetId("20260202");
  server_.next = tl::unexpected(HttpsError{"timed out", false, false});
  const StsLookup got = Get();
  ASSERT_TRUE(got.policy);
  EXPECT_TRUE(got.cached);
  EXPECT_EQ(got.policy->id, "20260101");
  EXPECT_EQ(got.policy->mode, sts::Mode::kEnforce);
  EXPECT_EQ(got.problem_type, "sts-policy-fetch-error");
  EXPECT_EQ(server_.Count(), 2u);
  // A failed fetch is not tried again at once (five minutes), and says so.
  const StsLookup again = Get();
  EXPECT_EQ(server_.Count(), 2u);
  ASSERT_TRUE(again.policy);
  EXPECT_EQ(again.policy->id, "20260101");
  EXPECT_EQ(again.problem_type, "sts-policy-fetch-error");
}

TEST_F(StsPoliciesTest, ACachedPolicyOutlivesAFailedTxtLookupUntilMaxAge) {
  server_.next = HttpsResponse{200, "text/plain",
                               "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 1\n"};
  ASSERT_TRUE(Get().policy);
  dns_.txt["_mta-sts.example.com"] = FakeLookup::Failed<dns::TxtAnswer>();
  const StsLookup fresh = Get();
  ASSERT_TRUE(fresh.policy);
  EXPECT_TRUE(fresh.cached);
  EXPECT_NE(fresh.problem.find("TXT lookup"), std::string::npos) << fresh.problem;
  // max_age (1 s) ends: the policy no longer applies.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  const StsLookup expired = Get();
  EXPECT_FALSE(expired.policy);
  EXPECT_FALSE(expired.cached);
  EXPECT_EQ(server_.Count(), 1u);
}

TEST_F(StsPoliciesTest, WithoutATxtRecordNothingIsFetched) {
  dns_.txt.clear();  // NXDOMAIN in a signed zone: the domain has no MTA-STS
  const StsLookup got = Get();
  EXPECT_FALSE(got.policy);
  EXPECT_EQ(got.problem, "");
  EXPECT_EQ(server_.Count(), 0u);
}

}  // namespace
}  // namespace danerelay::relay
