#pragma once
// What delivery decides about one MX host before and while it connects, written once for both
// users: the delivery pass (domain_delivery.cpp) and the probe behind `dane-check` and the
// pre-flight check (health/dane_probe.cpp), so that the tool whose whole value is to predict
// delivery cannot drift from it.
//
// PlanHost: the host's addresses and DNSSEC facts, the DANE decision (relay/DESIGN.md's table),
// MTA-STS where DANE does not apply, REQUIRETLS, and either the reason the host is not used or
// the request to send to each of its addresses. Connect: one address as delivery connects to it
// ("may": a failed handshake is tried once more in plain text).
//
// What it does not do: record attempts, log, count metrics or choose the next host; those stay
// with the caller, which knows whether it delivers or only probes.
#include <asio/awaitable.hpp>

#include <memory>
#include <optional>
#include <span>
#include <string>

#include <tl/expected.hpp>

#include "queue/failure.hpp"
#include "relay/delivery/smtp_client.hpp"
#include "relay/policy/dane_policy.hpp"
#include "relay/policy/mta_sts.hpp"
#include "relay/policy/next_hop.hpp"
#include "relay/policy/sts_policies.hpp"

namespace asio::ssl {
class context;
}

namespace danerelay::relay {

// The domain-wide inputs of the per-host decision.
struct DomainPolicy {
  std::string domain;  // A-label form
  DaneMode mode = DaneMode::kOpportunistic;
  bool testing = false;            // [dane] testing_domains: also judged as mandatory
  std::optional<sts::Policy> sts;  // the MTA-STS policy that applies (mode testing/enforce)
  bool requiretls = false;         // RFC 8689: the message asks for REQUIRETLS
  // RFC 8460 §4.3.2: the result type of the failed fetch of the domain's MTA-STS policy ("" when
  // none failed); `sts` is then the cached policy, or none.
  std::string sts_problem;
  // A TLS-RPT report mail (RFC 8460 §5.3: "MUST deliver reports despite any TLS-related
  // failures"): unless the domain is under mandatory DANE (the operator's table wins), its hosts
  // are used under "may" (STARTTLS when offered, the certificate not checked, plain text after a
  // failed handshake; a TLSA lookup that failed does not hold it back), without MTA-STS. The
  // operator's TLS policy for the domain or its route (verify, fingerprint, encrypt, none)
  // still applies, as it does to any mail.
  // Verifying first and falling back after would protect nothing: a report goes out either way.
  bool tls_report = false;
  // The route the mail takes (a copy: options may be reloaded while the pass runs), or none for
  // MX delivery; the TLS policy that applies (the route's, a [tls_policy] entry's, or DANE);
  // where connections come from.
  std::optional<Route> route;
  TlsSettings tls;
  SourceOptions source;
};

// RFC 8460 §4.4: the policy a host's sessions are reported under, typed here where it is
// decided (the attempts record it, TLS-RPT reads it).
struct ReportPolicy {
  std::string type;               // "tlsa", "sts", "no-policy-found"
  std::vector<std::string> tlsa;  // with "tlsa": the host's TLSA records, usable or not (§4.3.1)
  std::string sts_id;             // with "sts": the id of the policy applied, "" when none was had
  std::string sts_problem;        // with "sts": the §4.3.2 result type of a failed fetch, or ""
};

struct HostDecision {
  HostPlan dns;             // addresses, DNSSEC facts, TLSA
  PolicyDecision decision;  // the DANE table's row for this host
  // [dane] testing: what mandatory DANE would have decided, when it would defer and the
  // opportunistic decision does not.
  std::optional<PolicyDecision> would_defer;
  bool dane_applies = false;              // usable TLSA records: DANE, and MTA-STS set aside
  sts::Mode sts_mode = sts::Mode::kNone;  // MTA-STS as applied to this host
  bool sts_mx_allowed = false;            // the policy names this host (whatever its mode)
  std::string sts_mismatch;               // under MTA-STS testing: the host is not in the policy
  std::optional<queue::Failure> skip;     // the host is not used, and why
  ReportPolicy report;                    // what TLS-RPT reports its sessions under
  // Without a failure of its own, the RFC 8460 §4.3.1 result type of a session made under this
  // plan: "tlsa-invalid" where TLSA records were found and none is usable ("" otherwise).
  std::string session_result_type;
  ClientRequest request;  // for the addresses of a host that is used (ip, message to be set)
};

// The domain's side, pure: its A-label form (IDNA2008: DNS, the TLSA base, DANE-TA names and the
// mandatory list see it) and its DANE mode from [dane] mandatory_domains and testing_domains
// (`force_mandatory`: dane-check --mandatory). An error when the name has no A-label form.
// `sender` chooses a [sender_routes] entry. A route or [tls_policy] entry with "dane-only"
// makes the mode mandatory; mandatory DANE is never weakened: a domain under it that a default
// or subdomain route would take elsewhere goes there under "dane-only".
tl::expected<DomainPolicy, std::string> PolicyFor(const DeliveryOptions& options,
                                                  const std::string& recipient_domain,
                                                  bool force_mandatory = false,
                                                  std::string_view sender = "");

// MTA-STS as delivery applies it: for MX-based delivery only. A routed domain's policy is not
// looked up: RFC 8461 §4 validates the MX hosts of the recipient domain, and a route's upstream
// is not one (its TLS policy is the route's); Postfix's mta-sts-resolver applied the policy to
// the relayhost and deferred all mail (its issue #49).
struct StsFinding {
  StsLookup lookup;                   // as the cache answered (problem logged by the caller)
  std::optional<sts::Policy> policy;  // in force, mode testing or enforce
  std::string label;                  // for the attempts: "enforce id=..." (" (cached)")
  std::string missing;  // the domain publishes MTA-STS, no policy could be had (TLS-RPT label)
};
asio::awaitable<StsFinding> FindSts(StsPolicies& sts, const std::string& domain);

// The MX hosts delivery tries: the first [delivery] max_mx_hosts (a route's: all).
std::span<const NextHop> HostsToTry(const NextHops& hops, const DeliveryOptions& options);

asio::awaitable<HostDecision> PlanHost(dns::Lookup& resolver, const NextHop& host,
                                       const DomainPolicy& policy, const DeliveryOptions& options,
                                       const std::string& helo_name,
                                       std::shared_ptr<asio::ssl::context> tls_context);

struct AddressResult {
  ClientResult result;
  // "may": the TLS handshake failed and the address was tried again in plain text; this is
  // the first try's result.
  std::optional<ClientResult> handshake_failed;
};

// `request` as PlanHost made it, with its message (or none, for a probe) set.
asio::awaitable<AddressResult> Connect(ClientRequest request, const std::string& ip,
                                       ConnectionCache* cache);

}  // namespace danerelay::relay
