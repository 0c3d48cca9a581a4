// The outbound path's decisions without a network: next hops (MX, routes, null MX, failures),
// the TLSA base with CNAMEs (RFC 7672 §2.2), and the host plan in both DANE modes, with MTA-STS
// enforce and testing and REQUIRETLS, against a scripted dns::Lookup.
#include "relay/delivery/host_planner.hpp"

#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include <optional>
#include <random>

#include "dns/fake_lookup.hpp"

namespace danerelay::relay {
namespace {

using dns::DnssecState;
using dns::FakeLookup;
using queue::Cause;

template <typename T>
T Await(asio::awaitable<T> a) {
  asio::io_context io;
  std::optional<T> out;
  asio::co_spawn(io, std::move(a), [&](std::exception_ptr e, T v) {
    if (e) std::rethrow_exception(e);
    out = std::move(v);
  });
  io.run();
  return std::move(*out);
}

dns::TlsaRecord Usable() { return {3, 1, 1, std::vector<std::uint8_t>(32, 0xAB)}; }

// example.org's mail host mx.example.org at 192.0.2.1, the MX RRset and addresses in a zone of
// `state`, with TLSA records at _25._tcp.mx.example.org when `tlsa` says so.
FakeLookup World(DnssecState state, bool tlsa) {
  FakeLookup f;
  auto mx = FakeLookup::With<dns::MxAnswer>(state, "example.org");
  mx.records = {{10, "mx.example.org"}};
  f.mx["example.org"] = mx;
  auto a = FakeLookup::With<dns::AddressAnswer>(state, "mx.example.org");
  a.addresses = {"192.0.2.1"};
  f.addresses[{"mx.example.org", false}] = a;
  auto aaaa = FakeLookup::With<dns::AddressAnswer>(state, "mx.example.org");
  aaaa.rcode = dns::Rcode::kNoData;
  f.addresses[{"mx.example.org", true}] = aaaa;
  if (tlsa) {
    auto t = FakeLookup::With<dns::TlsaAnswer>(state, "_25._tcp.mx.example.org");
    t.records = {Usable()};
    f.tlsa["_25._tcp.mx.example.org"] = t;
  }
  return f;
}

NextHops Hops(FakeLookup& f, const std::string& domain, const DeliveryOptions& o = {}) {
  std::mt19937 rng(1);
  return Await(FindNextHops(f, domain, o, rng, FindRoute(o.routes, "", domain)));
}

TEST(NextHopTest, WhatTheMxAnswerMeans) {
  FakeLookup f = World(DnssecState::kSecure, false);
  const NextHops ok = Hops(f, "example.org");
  ASSERT_EQ(ok.hosts.size(), 1u);
  EXPECT_EQ(ok.hosts[0].name, "mx.example.org");
  EXPECT_EQ(ok.hosts[0].mx_dnssec, DnssecState::kSecure);

  const NextHops nx = Hops(f, "nowhere.example");  // no answer scripted: a secure NXDOMAIN
  EXPECT_TRUE(nx.hosts.empty());
  EXPECT_TRUE(nx.permanent);
  EXPECT_EQ(nx.status, "5.1.2");
  EXPECT_EQ(nx.cause, Cause::kRecipientDomain);

  auto null_mx = FakeLookup::With<dns::MxAnswer>(DnssecState::kSecure, "null.example");
  null_mx.records = {{0, ""}};
  f.mx["null.example"] = null_mx;
  const NextHops nm = Hops(f, "null.example");
  EXPECT_TRUE(nm.permanent);
  EXPECT_EQ(nm.status, "5.1.10");  // RFC 7505 §3

  f.mx["fail.example"] = FakeLookup::Failed<dns::MxAnswer>();
  const NextHops failed = Hops(f, "fail.example");
  EXPECT_FALSE(failed.permanent);
  EXPECT_EQ(failed.status, "4.4.3");
  EXPECT_EQ(failed.cause, Cause::kDns);
  f.mx["bogus.example"] = FakeLookup::Failed<dns::MxAnswer>(DnssecState::kBogus);
  EXPECT_EQ(Hops(f, "bogus.example").cause, Cause::kDnssecInvalid);

  // NODATA: the domain itself is the implicit MX (RFC 5321 §5.1).
  auto nodata = FakeLookup::With<dns::MxAnswer>(DnssecState::kInsecure, "bare.example");
  nodata.rcode = dns::Rcode::kNoData;
  f.mx["bare.example"] = nodata;
  const NextHops bare = Hops(f, "bare.example");
  ASSERT_EQ(bare.hosts.size(), 1u);
  EXPECT_EQ(bare.hosts[0].name, "bare.example");
  EXPECT_EQ(bare.hosts[0].mx_dnssec, DnssecState::kInsecure);
}

TEST(NextHopTest, MxHostsInPreferenceOrderAndRoutesWithoutLookup) {
  FakeLookup f;
  auto mx = FakeLookup::With<dns::MxAnswer>(DnssecState::kSecure, "two.example");
  mx.records = {{20, "b.two.example"}, {10, "a.two.example"}};
  f.mx["two.example"] = mx;
  const NextHops hops = Hops(f, "two.example");
  ASSERT_EQ(hops.hosts.size(), 2u);
  EXPECT_EQ(hops.hosts[0].name, "a.two.example");

  DeliveryOptions o;
  o.routes.by_domain["routed.example"].hosts = {*ParseRoute("[relay.example.net]:2525")};
  f.asked.clear();
  const NextHops routed = Hops(f, "routed.example", o);
  ASSERT_EQ(routed.hosts.size(), 1u);
  EXPECT_EQ(routed.hosts[0].name, "relay.example.net");
  EXPECT_EQ(routed.hosts[0].port, 2525);
  EXPECT_TRUE(f.asked.empty());  // a static route: no MX lookup
}

// A route's hosts in order: bracketed as they are, unbracketed by their MX hosts, then the
// fallback hosts; a host whose MX lookup fails is passed over, and with none left the attempt
// fails temporarily (the operator's route, not the recipient's domain).
TEST(NextHopTest, RouteHostsInOrderWithMxLookupAndFallback) {
  FakeLookup f;
  auto mx = FakeLookup::With<dns::MxAnswer>(DnssecState::kInsecure, "provider.example");
  mx.records = {{20, "b.provider.example"}, {10, "a.provider.example"}};
  f.mx["provider.example"] = mx;
  f.mx["gone.example"] = FakeLookup::Failed<dns::MxAnswer>(DnssecState::kInsecure);
  DeliveryOptions o;
  Route& r = o.routes.by_domain["*"];
  r.key = "*";
  r.hosts = {*ParseRoute("[first.example]:587"), *ParseRoute("gone.example"),
             *ParseRoute("provider.example:2525")};
  r.fallback = {*ParseRoute("[192.0.2.99]")};
  const NextHops hops = Hops(f, "anything.example", o);
  ASSERT_EQ(hops.hosts.size(), 4u);
  EXPECT_TRUE(hops.routed);
  EXPECT_EQ(hops.hosts[0].name, "first.example");
  EXPECT_EQ(hops.hosts[0].port, 587);
  EXPECT_EQ(hops.hosts[1].name, "a.provider.example");
  EXPECT_EQ(hops.hosts[1].port, 2525);
  EXPECT_EQ(hops.hosts[1].mx_dnssec, DnssecState::kInsecure);
  EXPECT_EQ(hops.hosts[2].name, "b.provider.example");
  EXPECT_TRUE(hops.hosts[3].ip_literal);
  EXPECT_TRUE(hops.hosts[3].fallback);
  EXPECT_FALSE(hops.hosts[2].fallback);
  // No [delivery] max_mx_hosts cap for the operator's own list.
  o.max_mx_hosts = 1;
  EXPECT_EQ(HostsToTry(hops, o).size(), 4u);

  r.hosts = {*ParseRoute("gone.example")};
  r.fallback.clear();
  const NextHops none = Hops(f, "anything.example", o);
  EXPECT_TRUE(none.hosts.empty());
  EXPECT_FALSE(none.permanent);
  EXPECT_EQ(none.status, "4.4.3");
}

HostPlan Resolve(FakeLookup& f, const std::string& host, DnssecState mx = DnssecState::kSecure) {
  return Await(ResolveHost(f, NextHop{host, 25, mx}));
}

// RFC 7672 §2.2 and §2.2.2: where the TLSA records are looked up.
TEST(NextHopTest, TlsaBaseFollowsTheCnameRules) {
  // No TLSA lookup below an MX RRset that is not secure.
  FakeLookup f = World(DnssecState::kSecure, true);
  EXPECT_FALSE(Resolve(f, "mx.example.org", DnssecState::kInsecure).facts.tlsa);
  EXPECT_EQ(std::count(f.asked.begin(), f.asked.end(), "TLSA _25._tcp.mx.example.org"), 0);

  // Secure addresses behind a CNAME: the expanded name first.
  auto a = FakeLookup::With<dns::AddressAnswer>(DnssecState::kSecure, "real.example.net");
  a.addresses = {"192.0.2.7"};
  f.addresses[{"alias.example.org", false}] = a;
  f.addresses[{"alias.example.org", true}] = a;
  auto t = FakeLookup::With<dns::TlsaAnswer>(DnssecState::kSecure, "_25._tcp.real.example.net");
  t.records = {Usable()};
  f.tlsa["_25._tcp.real.example.net"] = t;
  const HostPlan secure = Resolve(f, "alias.example.org");
  EXPECT_EQ(secure.tlsa_base, "real.example.net");
  ASSERT_TRUE(secure.facts.tlsa);
  EXPECT_EQ(secure.facts.tlsa->records.size(), 1u);

  // The chain turns insecure after a signed CNAME: the original name's TLSA records apply.
  auto insecure = FakeLookup::With<dns::AddressAnswer>(DnssecState::kInsecure, "cdn.example.net");
  insecure.addresses = {"192.0.2.8"};
  f.addresses[{"signed-alias.example.org", false}] = insecure;
  f.addresses[{"signed-alias.example.org", true}] = insecure;
  f.any[{"signed-alias.example.org", dns::Lookup::kTypeCname}] =
      FakeLookup::With<dns::Answer>(DnssecState::kSecure, "signed-alias.example.org");
  const HostPlan alias = Resolve(f, "signed-alias.example.org");
  EXPECT_TRUE(alias.facts.secure_alias);
  EXPECT_EQ(alias.tlsa_base, "signed-alias.example.org");

  // ... and when that CNAME lookup fails, the host defers (never "no TLSA").
  f.addresses[{"broken-alias.example.org", false}] = insecure;
  f.addresses[{"broken-alias.example.org", true}] = insecure;
  f.any[{"broken-alias.example.org", dns::Lookup::kTypeCname}] = FakeLookup::Failed<dns::Answer>();
  EXPECT_TRUE(Resolve(f, "broken-alias.example.org").facts.alias_failed);
}

struct PlanCase {
  const char* name;
  DnssecState zone;
  bool tlsa;
  DaneMode mode;
  std::optional<sts::Mode> sts;  // a policy for example.org with this mode
  bool sts_names_host;           // its mx list names mx.example.org
  bool requiretls;
  // Expected:
  std::optional<Cause> skip;  // the host is not used, for this cause
  TlsRequirement tls;         // else: what the connection requires
  bool webpki_required;
};

class PlanHostTest : public ::testing::TestWithParam<PlanCase> {};

TEST_P(PlanHostTest, Decides) {
  const PlanCase& c = GetParam();
  FakeLookup f = World(c.zone, c.tlsa);
  DomainPolicy policy;
  policy.domain = "example.org";
  policy.mode = c.mode;
  policy.requiretls = c.requiretls;
  if (c.sts) {
    sts::Policy p;
    p.id = "1";
    p.mode = *c.sts;
    p.mx = {c.sts_names_host ? "mx.example.org" : "other.example.org"};
    policy.sts = p;
  }
  const DeliveryOptions options;
  const HostDecision h = Await(
      PlanHost(f, NextHop{"mx.example.org", 25, c.zone}, policy, options, "relay.test", nullptr));
  if (c.skip) {
    ASSERT_TRUE(h.skip) << c.name;
    EXPECT_EQ(h.skip->cause, *c.skip) << c.name;
    EXPECT_EQ(h.skip->result_type, queue::ResultType(*c.skip)) << c.name;
    return;
  }
  ASSERT_FALSE(h.skip) << c.name << ": " << h.skip->text;
  EXPECT_EQ(h.request.tls, c.tls) << c.name;
  EXPECT_EQ(h.request.webpki_required, c.webpki_required) << c.name;
  EXPECT_EQ(h.request.dane.has_value(), c.tls == TlsRequirement::kDane) << c.name;
  EXPECT_EQ(h.request.requiretls, c.requiretls) << c.name;
  EXPECT_EQ(h.request.mx_host, "mx.example.org");
  EXPECT_EQ(h.request.helo_name, "relay.test");
}

constexpr auto kSecure = DnssecState::kSecure;
constexpr auto kInsecure = DnssecState::kInsecure;
constexpr auto kOpp = DaneMode::kOpportunistic;
constexpr auto kMand = DaneMode::kMandatory;
using sts::Mode;

// One row per case, the columns as in PlanCase.
// clang-format off
const PlanCase kPlanCases[] = {
    {"signed with TLSA: DANE",
     kSecure, true, kOpp, {}, false, false, {}, TlsRequirement::kDane, false},
    {"mandatory, signed with TLSA: DANE",
     kSecure, true, kMand, {}, false, false, {}, TlsRequirement::kDane, false},
    {"signed without TLSA: may",
     kSecure, false, kOpp, {}, false, false, {}, TlsRequirement::kMay, false},
    {"mandatory, signed without TLSA: deferred",
     kSecure, false, kMand, {}, false, false, Cause::kDaneRequired, TlsRequirement::kMay, false},
    {"mandatory, unsigned: deferred",
     kInsecure, false, kMand, {}, false, false, Cause::kDaneRequired, TlsRequirement::kMay, false},
    {"unsigned: may",
     kInsecure, false, kOpp, {}, false, false, {}, TlsRequirement::kMay, false},
    {"MTA-STS enforce naming the host: encrypt, WebPKI required",
     kInsecure, false, kOpp, Mode::kEnforce, true, false, {}, TlsRequirement::kEncrypt, true},
    {"MTA-STS enforce not naming the host: not used",
     kInsecure, false, kOpp, Mode::kEnforce, false, false, Cause::kStsMxMismatch, TlsRequirement::kMay, false},
    {"MTA-STS testing not naming the host: used, judged only",
     kInsecure, false, kOpp, Mode::kTesting, false, false, {}, TlsRequirement::kMay, false},
    {"DANE wins over MTA-STS enforce",
     kSecure, true, kOpp, Mode::kEnforce, false, false, {}, TlsRequirement::kDane, false},
    {"REQUIRETLS without DANE or MTA-STS: 5.7.10",
     kInsecure, false, kOpp, {}, false, true, Cause::kRequireTlsUnprotected, TlsRequirement::kMay, false},
    {"REQUIRETLS under MTA-STS testing naming the host: enforced",
     kInsecure, false, kOpp, Mode::kTesting, true, true, {}, TlsRequirement::kEncrypt, true},
    {"REQUIRETLS under DANE",
     kSecure, true, kOpp, {}, false, true, {}, TlsRequirement::kDane, false},
};
// clang-format on

INSTANTIATE_TEST_SUITE_P(Table, PlanHostTest, ::testing::ValuesIn(kPlanCases),
                         [](const auto& param) { return std::to_string(param.index); });

TEST(PlanHostTest, NoAddressBogusTlsaAndTheTestingNote) {
  const DeliveryOptions options;
  DomainPolicy policy;
  policy.domain = "example.org";
  FakeLookup none = World(DnssecState::kSecure, false);
  auto empty = FakeLookup::With<dns::AddressAnswer>(DnssecState::kSecure, "mx.example.org");
  empty.rcode = dns::Rcode::kNoData;
  none.addresses[{"mx.example.org", false}] = empty;
  HostDecision h = Await(PlanHost(none, NextHop{"mx.example.org"}, policy, options, "r", nullptr));
  ASSERT_TRUE(h.skip);
  EXPECT_EQ(h.skip->cause, Cause::kNoAddress);
  EXPECT_EQ(h.skip->status, "4.4.4");

  // A failed TLSA lookup is never "no TLSA": deferred in both modes (step 1).
  FakeLookup bogus = World(DnssecState::kSecure, false);
  bogus.tlsa["_25._tcp.mx.example.org"] = FakeLookup::Failed<dns::TlsaAnswer>(DnssecState::kBogus);
  h = Await(PlanHost(bogus, NextHop{"mx.example.org"}, policy, options, "r", nullptr));
  ASSERT_TRUE(h.skip);
  EXPECT_EQ(h.skip->cause, Cause::kDnssecInvalid);
  EXPECT_EQ(h.skip->result_type, "dnssec-invalid");

  // [dane] testing_domains: delivered opportunistically, what mandatory DANE would do noted.
  FakeLookup plain = World(DnssecState::kSecure, false);
  policy.testing = true;
  h = Await(PlanHost(plain, NextHop{"mx.example.org"}, policy, options, "r", nullptr));
  EXPECT_FALSE(h.skip);
  ASSERT_TRUE(h.would_defer);
  EXPECT_EQ(h.would_defer->step, 4);
}

// RFC 8460 §4.4: the policy the host's sessions are reported under, typed by the planner; and
// §4.3.1: TLSA records none of which is usable make a session tlsa-invalid.
TEST(PlanHostTest, ReportPolicy) {
  const DeliveryOptions options;
  DomainPolicy policy;
  policy.domain = "example.org";
  const NextHop mx{"mx.example.org"};
  FakeLookup dane = World(DnssecState::kSecure, true);
  HostDecision h = Await(PlanHost(dane, mx, policy, options, "r", nullptr));
  EXPECT_EQ(h.report.type, "tlsa");
  EXPECT_EQ(h.report.tlsa, std::vector<std::string>{Usable().ToString()});
  EXPECT_EQ(h.session_result_type, "");

  // Only PKIX-EE (usage 1), and a DANE-EE record with a matching type nobody defined (9).
  FakeLookup unusable = World(DnssecState::kSecure, true);
  unusable.tlsa["_25._tcp.mx.example.org"].records = {
      {1, 1, 1, std::vector<std::uint8_t>(32, 0xAB)}, {3, 1, 9, {0xCD}}};
  h = Await(PlanHost(unusable, mx, policy, options, "r", nullptr));
  EXPECT_FALSE(h.skip);
  EXPECT_EQ(h.request.tls, TlsRequirement::kEncrypt);
  EXPECT_EQ(h.report.type, "tlsa");
  EXPECT_EQ(h.report.tlsa.size(), 2u);
  EXPECT_EQ(h.session_result_type, "tlsa-invalid");
  DomainPolicy mandatory = policy;
  mandatory.mode = DaneMode::kMandatory;
  h = Await(PlanHost(unusable, mx, mandatory, options, "r", nullptr));
  ASSERT_TRUE(h.skip);
  EXPECT_EQ(h.skip->result_type, "tlsa-invalid");
  EXPECT_EQ(h.report.type, "tlsa");

  // MTA-STS where DANE does not apply: the policy's id, and a failed fetch beside it.
  FakeLookup plain = World(DnssecState::kInsecure, false);
  DomainPolicy sts = policy;
  sts.sts = sts::Policy{"20261201", sts::Mode::kEnforce, {"mx.example.org"}, {}};
  sts.sts_problem = "sts-policy-fetch-error";
  h = Await(PlanHost(plain, mx, sts, options, "r", nullptr));
  EXPECT_EQ(h.report.type, "sts");
  EXPECT_EQ(h.report.sts_id, "20261201");
  EXPECT_EQ(h.report.sts_problem, "sts-policy-fetch-error");
  // ... and none had at all.
  sts.sts.reset();
  h = Await(PlanHost(plain, mx, sts, options, "r", nullptr));
  EXPECT_EQ(h.report.type, "sts");
  EXPECT_EQ(h.report.sts_id, "");
  // DANE wins: the fetch failure is not this host's matter.
  h = Await(PlanHost(dane, mx, sts, options, "r", nullptr));
  EXPECT_EQ(h.report.type, "tlsa");
  EXPECT_EQ(h.report.sts_problem, "");
  h = Await(PlanHost(plain, mx, policy, options, "r", nullptr));
  EXPECT_EQ(h.report.type, "no-policy-found");
}

// RFC 8460 §5.3: a report mail gets through TLS failures, "may" instead of DANE or MTA-STS,
// except under mandatory DANE, where the operator's table decides as for any mail.
TEST(PlanHostTest, ReportMailGoesOutUnderMayExceptUnderMandatoryDane) {
  const DeliveryOptions options;
  DomainPolicy report;
  report.domain = "example.org";
  report.tls_report = true;
  const NextHop mx{"mx.example.org"};
  FakeLookup dane = World(DnssecState::kSecure, true);
  HostDecision h = Await(PlanHost(dane, mx, report, options, "r", nullptr));
  ASSERT_FALSE(h.skip);
  EXPECT_EQ(h.request.tls, TlsRequirement::kMay);
  EXPECT_FALSE(h.request.dane);
  EXPECT_FALSE(h.dane_applies);

  // A TLSA lookup that failed holds a report back no more.
  FakeLookup bogus = World(DnssecState::kSecure, false);
  bogus.tlsa["_25._tcp.mx.example.org"] = FakeLookup::Failed<dns::TlsaAnswer>(DnssecState::kBogus);
  h = Await(PlanHost(bogus, mx, report, options, "r", nullptr));
  ASSERT_FALSE(h.skip);
  EXPECT_EQ(h.request.tls, TlsRequirement::kMay);
  // An address lookup that failed does: there is nowhere to send it.
  FakeLookup no_address = World(DnssecState::kSecure, false);
  no_address.addresses[{"mx.example.org", false}] = FakeLookup::Failed<dns::AddressAnswer>();
  h = Await(PlanHost(no_address, mx, report, options, "r", nullptr));
  EXPECT_TRUE(h.skip);

  // MTA-STS enforce without this host: not applied to a report.
  FakeLookup plain = World(DnssecState::kInsecure, false);
  DomainPolicy sts = report;
  sts.sts = sts::Policy{"1", sts::Mode::kEnforce, {"other.example.org"}, {}};
  h = Await(PlanHost(plain, mx, sts, options, "r", nullptr));
  ASSERT_FALSE(h.skip);
  EXPECT_EQ(h.request.tls, TlsRequirement::kMay);
  EXPECT_FALSE(h.request.webpki_required);

  // Mandatory DANE: as any mail.
  DomainPolicy mandatory = report;
  mandatory.mode = DaneMode::kMandatory;
  h = Await(PlanHost(dane, mx, mandatory, options, "r", nullptr));
  ASSERT_FALSE(h.skip);
  EXPECT_EQ(h.request.tls, TlsRequirement::kDane);
  h = Await(PlanHost(bogus, mx, mandatory, options, "r", nullptr));
  ASSERT_TRUE(h.skip);
  EXPECT_EQ(h.skip->cause, Cause::kDnssecInvalid);
  FakeLookup unsigned_world = World(DnssecState::kInsecure, false);
  h = Await(PlanHost(unsigned_world, mx, mandatory, options, "r", nullptr));
  ASSERT_TRUE(h.skip);
  EXPECT_EQ(h.skip->cause, Cause::kDaneRequired);
}

// RFC 8460 §5.3 relaxes what the recipient domain publishes, not the operator's table: a report
// mail to a domain with a [tls_policy] entry (or a route) keeps that entry's checks.
TEST(PlanHostTest, ReportMailKeepsTheOperatorsTlsPolicy) {
  const DeliveryOptions options;
  const NextHop mx{"mx.example.org"};
  FakeLookup dane = World(DnssecState::kSecure, true);
  DomainPolicy report;
  report.domain = "example.org";
  report.tls_report = true;
  report.tls.policy = TlsPolicy::kVerify;
  HostDecision h = Await(PlanHost(dane, mx, report, options, "r", nullptr));
  ASSERT_FALSE(h.skip);
  EXPECT_EQ(h.request.tls, TlsRequirement::kEncrypt);
  EXPECT_TRUE(h.request.webpki_required);
  EXPECT_EQ(h.request.webpki_names, std::vector<std::string>{"mx.example.org"});
  report.tls.policy = TlsPolicy::kFingerprint;
  report.tls.fingerprints = {std::string(64, 'a')};
  h = Await(PlanHost(dane, mx, report, options, "r", nullptr));
  EXPECT_EQ(h.request.tls, TlsRequirement::kDane);
  ASSERT_TRUE(h.request.dane);
  EXPECT_EQ(h.request.dane->records.size(), 2u);
  report.tls.policy = TlsPolicy::kNone;
  EXPECT_TRUE(Await(PlanHost(dane, mx, report, options, "r", nullptr)).request.no_tls);
  // The default (DANE where the domain publishes it) is what a report mail relaxes.
  report.tls = TlsSettings{};
  h = Await(PlanHost(dane, mx, report, options, "r", nullptr));
  EXPECT_EQ(h.request.tls, TlsRequirement::kMay);
  EXPECT_FALSE(h.request.dane);
}

// The operator's TLS policies, as the request carries them out.
TEST(PlanHostTest, OperatorTlsPolicies) {
  const DeliveryOptions options;
  const NextHop mx{"mx.example.org"};
  const auto with = [](TlsPolicy p, std::vector<std::string> names = {},
                       std::vector<std::string> pins = {}) {
    TlsSettings t;
    t.policy = p;
    t.names = std::move(names);
    t.fingerprints = std::move(pins);
    return t;
  };
  const auto plan = [&](TlsSettings tls, bool with_tlsa) {
    FakeLookup f = World(DnssecState::kSecure, with_tlsa);
    DomainPolicy policy;
    policy.domain = "example.org";
    policy.tls = std::move(tls);
    return Await(PlanHost(f, mx, policy, options, "r", nullptr));
  };
  TlsSettings verify = with(TlsPolicy::kVerify, {"a.example", "b.example"});
  HostDecision h = plan(verify, false);
  EXPECT_EQ(h.request.tls, TlsRequirement::kEncrypt);
  EXPECT_TRUE(h.request.webpki_required);
  EXPECT_EQ(h.request.webpki_names, (std::vector<std::string>{"a.example", "b.example"}));
  EXPECT_EQ(h.request.webpki_cause, Cause::kTlsPolicyNotVerified);
  verify.names.clear();
  EXPECT_EQ(plan(verify, false).request.webpki_names, std::vector<std::string>{"mx.example.org"});
  // DANE wins where TLSA records are usable...
  h = plan(verify, true);
  EXPECT_EQ(h.request.tls, TlsRequirement::kDane);
  EXPECT_FALSE(h.request.webpki_required);
  // ...but the operator's pins are the operator's: matched by OpenSSL's DANE code as 3 0 1 / 3 1 1.
  const std::string pin(64, 'a');
  h = plan(with(TlsPolicy::kFingerprint, {}, {pin}), true);
  EXPECT_EQ(h.request.tls, TlsRequirement::kDane);
  ASSERT_TRUE(h.request.dane);
  ASSERT_EQ(h.request.dane->records.size(), 2u);
  EXPECT_EQ(h.request.dane->records[0].ToString().substr(0, 6), "3 0 1 ");
  EXPECT_EQ(h.request.dane->records[1].ToString().substr(0, 6), "3 1 1 ");
  EXPECT_EQ(h.request.dane->records[1].data, std::vector<std::uint8_t>(32, 0xAA));
  h = plan(with(TlsPolicy::kNone), false);
  EXPECT_TRUE(h.request.no_tls);
  EXPECT_EQ(plan(with(TlsPolicy::kEncrypt), false).request.tls, TlsRequirement::kEncrypt);
  EXPECT_EQ(plan(with(TlsPolicy::kMay), true).request.tls, TlsRequirement::kDane);
}

TEST(PolicyForTest, RoutesTlsPolicyAndMandatoryDaneNeverWeakened) {
  DeliveryOptions o;
  o.mandatory_domains = {".bank.example"};
  o.source.ehlo_name = "out.example";
  Route star;
  star.key = "*";
  star.tls.policy = TlsPolicy::kVerify;
  star.source.ehlo_name = "route.example";
  o.routes.by_domain["*"] = star;
  o.routes.tls_policy["partner.example"].policy = TlsPolicy::kDaneOnly;
  auto p = PolicyFor(o, "other.example");
  ASSERT_TRUE(p && p->route);
  EXPECT_EQ(p->route->key, "*");
  EXPECT_EQ(p->tls.policy, TlsPolicy::kVerify);
  EXPECT_EQ(p->source.ehlo_name, "route.example");
  // A mandatory domain that the default route takes: the route's host under dane-only.
  p = PolicyFor(o, "pay.bank.example");
  EXPECT_EQ(p->mode, DaneMode::kMandatory);
  EXPECT_EQ(p->tls.policy, TlsPolicy::kDaneOnly);
  o.routes.by_domain.clear();
  p = PolicyFor(o, "partner.example");
  EXPECT_FALSE(p->route);
  EXPECT_EQ(p->mode, DaneMode::kMandatory);  // [tls_policy] dane-only
  EXPECT_EQ(p->source.ehlo_name, "out.example");
}

TEST(PolicyForTest, ALabelsModeAndTesting) {
  DeliveryOptions o;
  o.mandatory_domains = {".bank.example"};
  o.testing_domains = {"trial.example"};
  auto p = PolicyFor(o, "Bücher.example");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->domain, "xn--bcher-kva.example");
  EXPECT_EQ(p->mode, DaneMode::kOpportunistic);
  EXPECT_EQ(PolicyFor(o, "pay.bank.example")->mode, DaneMode::kMandatory);
  EXPECT_TRUE(PolicyFor(o, "trial.example")->testing);
  EXPECT_EQ(PolicyFor(o, "other.example", true)->mode, DaneMode::kMandatory);
  EXPECT_FALSE(PolicyFor(o, std::string("bad\xff.example")));
}

}  // namespace
}  // namespace danerelay::relay
