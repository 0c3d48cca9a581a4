#include "relay/health/dane_probe.hpp"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <span>

#include "dns/idn.hpp"
#include "dns/lookup.hpp"
#include "relay/delivery/host_planner.hpp"
#include "relay/policy/next_hop.hpp"
#include "relay/policy/sts_policies.hpp"

namespace danerelay::relay {
namespace {

std::string_view TlsName(TlsRequirement t) {
  switch (t) {
    case TlsRequirement::kMay:
      return "may (STARTTLS if offered, certificate not checked)";
    case TlsRequirement::kEncrypt:
      return "encrypt (STARTTLS required, certificate not checked)";
    case TlsRequirement::kDane:
      return "dane (STARTTLS required, certificate must match TLSA)";
  }
  return "none";
}

std::string TlsaText(const std::optional<dns::TlsaAnswer>& t) {
  if (!t) return "not looked up (MX or address records not secure)";
  std::string s(dns::ToString(t->dnssec));
  if (t->rcode == dns::Rcode::kFailed) return s + ", lookup failed: " + t->why;
  if (t->records.empty()) return s + ", no records";
  return s;
}

}  // namespace

asio::awaitable<int> ProbeDomain(const DeliveryOptions& options, const std::string& helo_name,
                                 const std::string& given_domain, bool mandatory,
                                 dns::Lookup& resolver, std::shared_ptr<asio::ssl::context> tls_ctx,
                                 StsPolicies* sts, nlohmann::json& report) {
  auto domain_policy = PolicyFor(options, given_domain, mandatory);
  if (!domain_policy) {
    report = {{"domain", given_domain},
              {"hosts", nlohmann::json::array()},
              {"verdict", "bounced"},
              {"status", "5.1.2"},
              {"reason", fmt::format("{} is {}", given_domain, domain_policy.error())}};
    co_return 2;
  }
  DomainPolicy& policy = *domain_policy;
  policy.testing = false;  // the prediction is for the mode delivery uses
  const std::string& domain = policy.domain;
  report["domain"] = domain;
  report["mode"] = policy.mode == DaneMode::kMandatory ? "mandatory" : "opportunistic";
  std::mt19937 rng(0);
  const NextHops hops = co_await FindNextHops(resolver, domain, options, rng);
  report["hosts"] = nlohmann::json::array();
  if (hops.hosts.empty()) {
    report["verdict"] = hops.permanent ? "bounced" : "deferred";
    report["status"] = hops.status;
    report["reason"] = hops.reason;
    co_return hops.permanent ? 2 : 1;
  }
  // MTA-STS as delivery applies it (not for [routes]; DANE wins where it applies).
  if (sts && !options.routes.contains(domain)) {
    const StsFinding found = co_await FindSts(*sts, options, domain);
    const StsLookup& look = found.lookup;
    nlohmann::json j = {{"problem", look.problem}, {"cached", look.cached}};
    if (look.policy) {
      j["id"] = look.policy->id;
      j["mode"] = std::string(sts::ToString(look.policy->mode));
      j["mx"] = look.policy->mx;
      j["max_age"] = look.policy->max_age.count();
    }
    report["mta_sts"] = std::move(j);
    policy.sts = found.policy;
  }
  const std::optional<sts::Policy>& sts_policy = policy.sts;
  std::uint32_t addresses_tried = 0;  // as delivery: max_addresses addresses in all
  for (const auto& hop : HostsToTry(hops, options)) {
    const HostDecision hd = co_await PlanHost(resolver, hop, policy, options, helo_name, tls_ctx);
    const HostPlan& plan = hd.dns;
    const PolicyDecision& decision = hd.decision;
    nlohmann::json h = {{"host", hop.name},
                        {"port", hop.port},
                        {"dnssec_mx", std::string(dns::ToString(hop.mx_dnssec))},
                        {"dnssec_address", DescribeAddress(plan.facts)},
                        {"addresses", plan.addresses},
                        {"tlsa_base", plan.tlsa_base},
                        {"tlsa", TlsaText(plan.facts.tlsa)},
                        {"tlsa_records", nlohmann::json::array()},
                        {"policy_step", decision.step},
                        {"policy", decision.reason},
                        {"connections", nlohmann::json::array()}};
    if (plan.facts.tlsa) {
      for (const auto& r : plan.facts.tlsa->records) {
        h["tlsa_records"].push_back({{"record", r.ToString()}, {"usable", tls::UsableForSmtp(r)}});
      }
    }
    // MTA-STS where DANE does not apply (and the host is usable at all).
    if (sts_policy && !plan.no_address && !decision.defer) {
      h["mta_sts"] = hd.dane_applies     ? "DANE applies"
                     : hd.sts_mx_allowed ? "the MX host matches the policy"
                                         : "the MX host does not match the policy";
    }
    if (hd.skip) {
      h["result"] = "deferred";
      h["status"] = hd.skip->status;
      // The DANE decision's own words: the report names the host already.
      h["reason"] = decision.defer ? decision.reason : hd.skip->text;
    } else {
      h["tls_requirement"] = std::string(TlsName(decision.tls));
      bool passed = false;
      ClientRequest req = hd.request;
      req.timeouts.greeting = req.timeouts.command = std::chrono::seconds(30);
      for (const auto& ip : plan.addresses) {
        if (addresses_tried++ >= options.max_addresses) break;
        if (ReachesListener(options.own_listeners, ip, hop.port)) {
          // As delivery: never connected to, the mail would loop.
          h["connections"].push_back(
              {{"ip", ip},
               {"ok", false},
               {"status", "5.4.6"},
               {"reason", fmt::format("mail for {} loops back to myself ({}[{}]:{} is where I "
                                      "listen)",
                                      domain, hop.name, ip, hop.port)}});
          continue;
        }
        const AddressResult tried = co_await Connect(req, ip, nullptr);
        const ClientResult& r = tried.result;
        nlohmann::json c = {
            {"ip", ip}, {"starttls_offered", r.starttls_offered}, {"ok", !r.host_failed}};
        if (tried.handshake_failed) {
          // As delivery does under "may": a failed handshake is retried once in plain text.
          c["handshake_failed"] = tried.handshake_failed->failure.text;
          c["plaintext_retry"] = true;
        }
        if (r.host_failed) {
          c["status"] = r.failure.status;
          c["reason"] = r.failure.text;
        }
        if (r.verdict) {
          c["tls_verdict"] = std::string(tls::ToString(r.verdict->kind));
          c["tls"] = r.verdict->protocol;
          c["matched_tlsa"] = r.verdict->matched_tlsa;
          c["matched_depth"] = r.verdict->depth;
          c["verify_reason"] = r.verdict->reason;
          c["chain"] = nlohmann::json::array();
          for (const auto& cert : r.verdict->chain) {
            c["chain"].push_back({{"depth", cert.depth},
                                  {"subject", cert.subject},
                                  {"issuer", cert.issuer},
                                  {"spki_sha256", cert.spki_sha256},
                                  {"cert_sha256", cert.cert_sha256}});
          }
        }
        passed = passed || !r.host_failed;
        h["connections"].push_back(std::move(c));
      }
      h["result"] = passed ? "delivered" : "deferred";
    }
    const bool ok = h["result"] == "delivered";
    report["hosts"].push_back(std::move(h));
    if (ok) {
      report["verdict"] = "delivered";
      report["via"] = hop.name;
      co_return 0;  // delivery stops at the first host that takes the mail
    }
  }
  report["verdict"] = "deferred";
  co_return 1;
}

}  // namespace danerelay::relay
