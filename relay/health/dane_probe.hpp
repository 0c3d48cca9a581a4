#pragma once
// The probe behind `danerelay dane-check` and the daemon's pre-flight check of mandatory-DANE
// domains: MX, addresses and TLSA with their DNSSEC state, the DANE policy per MX host, and a
// STARTTLS probe of each address that the policy lets through (EHLO, STARTTLS, QUIT: no mail
// is sent), decided by the host planner delivery uses (relay/delivery/host_planner.hpp).
//
// The result is typed; the command line turns it into text or JSON (tools/cli/dane_check.cpp).
#include <asio/awaitable.hpp>
#include <asio/ssl/context.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "relay/delivery/host_planner.hpp"
#include "relay/options.hpp"

namespace danerelay::dns {
class Lookup;
}

namespace danerelay::relay {

class StsPolicies;

enum class ProbeVerdict { kDelivered, kDeferred, kBounced };

// One address of a host the policy lets through.
struct ProbeConnection {
  std::string ip;
  bool ok = false;  // the host would take the mail here
  bool starttls_offered = false;
  std::string handshake_failed;  // "may": the failed handshake before the plain-text retry
  std::string status, reason;    // why not, when !ok
  std::optional<tls::Verdict> verdict;
};

struct ProbeHost {
  NextHop hop;
  HostDecision plan;  // addresses, DNSSEC facts, TLSA, the DANE decision, MTA-STS, the request
  bool sts_checked = false;    // an MTA-STS policy was looked at for this host
  bool delivered = false;      // the host would take the mail
  std::string status, reason;  // why it is not used (plan.skip), in the decision's words
  std::vector<ProbeConnection> connections;
};

struct ProbeReport {
  std::string domain;  // A-label form (or as given, when it has none)
  bool mandatory = false;
  std::string route;                 // the [routes] key that applies ("": MX delivery)
  std::string tls_policy;            // "dane", "verify", ... as the route or [tls_policy] says
  std::optional<StsLookup> mta_sts;  // when MTA-STS was looked at
  std::vector<ProbeHost> hosts;
  ProbeVerdict verdict = ProbeVerdict::kDeferred;
  std::string via;             // the host that would take the mail
  std::string status, reason;  // for a domain without hosts (IDNA, NXDOMAIN, null MX, DNS)
};

// 0 (would be delivered), 1 (deferred) or 2 (bounced): dane-check's exit status.
int ExitStatus(const ProbeReport& report);

// `sts`: MTA-STS as delivery applies it (nullptr: not looked at). `mandatory` forces mandatory
// DANE; otherwise [dane] mandatory_domains decides. [routes] apply as in delivery.
asio::awaitable<ProbeReport> ProbeDomain(const DeliveryOptions& options,
                                         const std::string& helo_name, const std::string& domain,
                                         bool mandatory, dns::Lookup& resolver,
                                         std::shared_ptr<asio::ssl::context> tls_ctx,
                                         StsPolicies* sts);

}  // namespace danerelay::relay
