#include "relay/policy/next_hop.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>

#include "dns/lookup.hpp"

namespace danerelay::relay {
namespace {

// MX hosts in the order to try them: by preference, equal ones shuffled (RFC 5321 §5.1).
std::vector<dns::MxRecord> Ordered(std::vector<dns::MxRecord> records, std::mt19937& rng) {
  std::shuffle(records.begin(), records.end(), rng);
  std::stable_sort(records.begin(), records.end(),
                   [](const auto& a, const auto& b) { return a.preference < b.preference; });
  return records;
}

// A route's hosts. A configured next hop is as trustworthy as an MX record from a signed zone;
// one looked up by MX is as its answer was. A host whose MX lookup fails is passed over (the
// next one may work); when none is left the attempt fails temporarily (never a bounce: the
// route is the operator's, not the recipient's).
asio::awaitable<NextHops> RouteHops(dns::Lookup& resolver, const Route& route,
                                    const DeliveryOptions& options, std::mt19937& rng) {
  NextHops out;
  out.routed = true;
  const std::uint16_t default_port = route.tls.implicit_tls ? 465 : options.port;
  std::vector<std::string> problems;
  for (const auto* list : {&route.hosts, &route.fallback}) {
    for (const RouteHost& h : *list) {
      const std::uint16_t port = h.port ? h.port : default_port;
      const bool fallback = list == &route.fallback;
      if (!h.mx_lookup) {
        out.hosts.push_back({h.host, port, dns::DnssecState::kSecure, h.ip_literal, fallback});
        continue;
      }
      const dns::MxAnswer mx = co_await resolver.LookupMx(h.host);
      if (mx.rcode == dns::Rcode::kNoData) {
        out.hosts.push_back({h.host, port, mx.dnssec, false, fallback});
      } else if (mx.rcode == dns::Rcode::kNoError) {
        for (const auto& r : Ordered(mx.records, rng)) {
          if (!r.host.empty()) out.hosts.push_back({r.host, port, mx.dnssec, false, fallback});
        }
      } else {
        problems.push_back(
            fmt::format("MX lookup for {} failed: {}", h.host,
                        mx.rcode == dns::Rcode::kNxDomain ? "no such domain" : mx.why));
      }
    }
  }
  if (out.hosts.empty()) {
    out.status = "4.4.3";
    out.cause = queue::Cause::kDns;
    out.reason =
        fmt::format("route {}: no host could be found ({})", route.key, fmt::join(problems, "; "));
  }
  co_return out;
}

}  // namespace

asio::awaitable<NextHops> FindNextHops(dns::Lookup& resolver, const std::string& domain,
                                       const DeliveryOptions& options, std::mt19937& rng,
                                       const Route* route) {
  if (route) co_return co_await RouteHops(resolver, *route, options, rng);
  NextHops out;
  const dns::MxAnswer mx = co_await resolver.LookupMx(domain);
  if (mx.rcode == dns::Rcode::kNxDomain) {
    out.permanent = true;
    out.status = "5.1.2";  // RFC 3463: bad destination system address
    out.cause = queue::Cause::kRecipientDomain;
    out.reason = fmt::format(
        "Host or domain name not found. Name service error for name={} type=MX: Host not found",
        domain);
    co_return out;
  }
  if (mx.rcode == dns::Rcode::kFailed) {
    out.status = "4.4.3";
    out.cause =
        mx.dnssec == dns::DnssecState::kBogus ? queue::Cause::kDnssecInvalid : queue::Cause::kDns;
    out.reason = fmt::format("Host or domain name lookup failed for name={} type=MX: {} ({})",
                             domain, mx.why, dns::ToString(mx.dnssec));
    co_return out;
  }
  if (mx.rcode == dns::Rcode::kNoData) {
    out.hosts.push_back({domain, options.port, mx.dnssec});  // the implicit MX
    co_return out;
  }
  const std::vector<dns::MxRecord>& records = mx.records;
  if (std::any_of(records.begin(), records.end(), [](const auto& r) { return r.host.empty(); })) {
    out.permanent = true;  // RFC 7505 §3
    out.status = "5.1.10";
    out.cause = queue::Cause::kRecipientDomain;
    out.reason = fmt::format("Domain {} does not accept mail (null MX)", domain);
    co_return out;
  }
  for (const auto& r : Ordered(records, rng))
    out.hosts.push_back({r.host, options.port, mx.dnssec});
  co_return out;
}

asio::awaitable<HostPlan> ResolveHost(dns::Lookup& resolver, const NextHop& hop) {
  HostPlan plan;
  plan.facts.mx = hop.mx_dnssec;
  plan.tlsa_base = LowerAscii(hop.name);
  if (hop.ip_literal) {
    plan.addresses.push_back(hop.name);
    plan.facts.address = dns::DnssecState::kInsecure;
    co_return plan;
  }
  const auto a4 = co_await resolver.LookupAddresses(hop.name, false);
  const auto a6 = co_await resolver.LookupAddresses(hop.name, true);
  auto& f = plan.facts;
  f.address_failed = a4.rcode == dns::Rcode::kFailed || a6.rcode == dns::Rcode::kFailed;
  const bool secure =
      a4.dnssec == dns::DnssecState::kSecure && a6.dnssec == dns::DnssecState::kSecure;
  f.address = f.address_failed ? (a4.rcode == dns::Rcode::kFailed ? a4.dnssec : a6.dnssec)
              : secure         ? dns::DnssecState::kSecure
                               : dns::DnssecState::kInsecure;
  plan.addresses = a4.addresses;
  plan.addresses.insert(plan.addresses.end(), a6.addresses.begin(), a6.addresses.end());
  if (f.address_failed) co_return plan;
  if (plan.addresses.empty()) {
    plan.no_address = true;
    co_return plan;
  }
  // RFC 7672 §2.2: TLSA only below a secure MX RRset and secure address records (a lookup under
  // an unsigned zone could stall mail on broken servers); the CNAME-expanded name first, then
  // the original name.
  if (f.mx != dns::DnssecState::kSecure) co_return plan;
  const std::string original = LowerAscii(hop.name);
  const std::string canonical =
      LowerAscii(a4.rcode == dns::Rcode::kNoError ? a4.canonical_name : a6.canonical_name);
  std::vector<std::string> bases;
  if (secure) {
    bases.push_back(canonical);
    if (canonical != original) bases.push_back(original);
  } else if (canonical != original) {
    // RFC 7672 §2.2.2, RFC 7671 §7: the chain became insecure after the MX host name. When that
    // name's own CNAME record is signed, its TLSA records still apply (danerelay(7), CNAMES).
    const dns::Answer alias = co_await resolver.LookupAny(hop.name, dns::Lookup::kTypeCname);
    if (alias.rcode == dns::Rcode::kFailed) {
      f.alias_failed = true;
      co_return plan;
    }
    if (alias.rcode != dns::Rcode::kNoError || alias.dnssec != dns::DnssecState::kSecure) {
      co_return plan;
    }
    f.secure_alias = true;
    bases.push_back(original);
  }
  for (const auto& base : bases) {
    const std::string name = fmt::format("_{}._tcp.{}", hop.port, base);  // named: GCC 12
    f.tlsa = co_await resolver.LookupTlsa(name);
    plan.tlsa_base = base;
    // A failure stops here (relay/DESIGN.md step 1); a secure denial or an insecure answer (which
    // cannot be used) moves on to the original name.
    const bool failed =
        f.tlsa->rcode == dns::Rcode::kFailed || f.tlsa->dnssec == dns::DnssecState::kBogus;
    const bool found =
        f.tlsa->rcode == dns::Rcode::kNoError && f.tlsa->dnssec == dns::DnssecState::kSecure;
    if (failed || found) break;
  }
  co_return plan;
}

tls::DaneSetup MakeDaneSetup(const HostPlan& plan, const NextHop& hop, const std::string& domain,
                             const PolicyDecision& decision) {
  tls::DaneSetup dane;
  dane.base_domain = plan.tlsa_base;
  if (LowerAscii(hop.name) != plan.tlsa_base) dane.extra_names.push_back(hop.name);
  dane.extra_names.push_back(domain);
  dane.records = decision.usable;
  return dane;
}

}  // namespace danerelay::relay
