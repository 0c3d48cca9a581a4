#include "relay/health/dane_probe.hpp"

#include <fmt/format.h>

#include <random>

#include "dns/lookup.hpp"
#include "relay/network.hpp"
#include "relay/policy/next_hop.hpp"
#include "relay/policy/sts_policies.hpp"

namespace danerelay::relay {
namespace {

// One host: its plan, and each address it lets through probed as delivery would connect.
asio::awaitable<ProbeHost> ProbeHostOf(const NextHop& hop, const DomainPolicy& policy,
                                       const DeliveryOptions& options, const std::string& helo_name,
                                       dns::Lookup& resolver,
                                       std::shared_ptr<asio::ssl::context> tls_ctx,
                                       std::uint32_t& addresses_tried) {
  ProbeHost h;
  h.hop = hop;
  h.plan = co_await PlanHost(resolver, hop, policy, options, helo_name, tls_ctx);
  const PolicyDecision& decision = h.plan.decision;
  h.sts_checked = policy.sts && !h.plan.dns.no_address && !decision.defer;
  if (h.plan.skip) {
    h.status = h.plan.skip->status;
    // The DANE decision's own words: the report names the host already.
    h.reason = decision.defer ? decision.reason : h.plan.skip->text;
    co_return h;
  }
  ClientRequest req = h.plan.request;
  req.timeouts.greeting = req.timeouts.command = std::chrono::seconds(30);
  for (const auto& ip : h.plan.dns.addresses) {
    if (addresses_tried++ >= options.max_addresses) break;
    ProbeConnection c;
    c.ip = ip;
    if (ReachesListener(options.own_listeners, ip, hop.port)) {
      // As delivery: never connected to, the mail would loop.
      c.status = "5.4.6";
      c.reason = fmt::format("mail for {} loops back to myself ({}[{}]:{} is where I listen)",
                             policy.domain, hop.name, ip, hop.port);
      h.connections.push_back(std::move(c));
      continue;
    }
    const AddressResult tried = co_await Connect(req, ip, nullptr);
    const ClientResult& r = tried.result;
    c.ok = !r.host_failed;
    c.starttls_offered = r.starttls_offered;
    if (tried.handshake_failed) c.handshake_failed = tried.handshake_failed->failure.text;
    if (r.host_failed) {
      c.status = r.failure.status;
      c.reason = r.failure.text;
    }
    c.verdict = r.verdict;
    h.delivered = h.delivered || c.ok;
    h.connections.push_back(std::move(c));
  }
  co_return h;
}

}  // namespace

int ExitStatus(const ProbeReport& report) {
  switch (report.verdict) {
    case ProbeVerdict::kDelivered:
      return 0;
    case ProbeVerdict::kDeferred:
      return 1;
    case ProbeVerdict::kBounced:
      return 2;
  }
  return 1;
}

asio::awaitable<ProbeReport> ProbeDomain(const DeliveryOptions& options,
                                         const std::string& helo_name,
                                         const std::string& given_domain, bool mandatory,
                                         dns::Lookup& resolver,
                                         std::shared_ptr<asio::ssl::context> tls_ctx,
                                         StsPolicies* sts) {
  ProbeReport report;
  report.domain = given_domain;
  auto domain_policy = PolicyFor(options, given_domain, mandatory);
  if (!domain_policy) {
    report.verdict = ProbeVerdict::kBounced;
    report.status = "5.1.2";
    report.reason = fmt::format("{} is {}", given_domain, domain_policy.error());
    co_return report;
  }
  DomainPolicy& policy = *domain_policy;
  policy.testing = false;  // the prediction is for the mode delivery uses
  report.domain = policy.domain;
  report.mandatory = policy.mode == DaneMode::kMandatory;
  if (policy.route) report.route = policy.route->key;
  report.tls_policy = std::string(ToString(policy.tls.policy));
  std::mt19937 rng(0);
  const Route* route = policy.route ? &*policy.route : nullptr;
  const NextHops hops = co_await FindNextHops(resolver, policy.domain, options, rng, route);
  if (hops.hosts.empty()) {
    report.verdict = hops.permanent ? ProbeVerdict::kBounced : ProbeVerdict::kDeferred;
    report.status = hops.status;
    report.reason = hops.reason;
    co_return report;
  }
  // MTA-STS as delivery applies it (not for [routes]; DANE wins where it applies).
  if (sts && !route) {
    const StsFinding found = co_await FindSts(*sts, policy.domain);
    report.mta_sts = found.lookup;
    policy.sts = found.policy;
  }
  std::uint32_t addresses_tried = 0;  // as delivery: max_addresses addresses in all
  for (const auto& hop : HostsToTry(hops, options)) {
    report.hosts.push_back(
        co_await ProbeHostOf(hop, policy, options, helo_name, resolver, tls_ctx, addresses_tried));
    if (report.hosts.back().delivered) {
      report.verdict = ProbeVerdict::kDelivered;
      report.via = hop.name;
      co_return report;  // delivery stops at the first host that takes the mail
    }
  }
  report.verdict = ProbeVerdict::kDeferred;
  co_return report;
}

}  // namespace danerelay::relay
