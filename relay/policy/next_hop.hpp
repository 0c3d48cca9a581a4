#pragma once
// Where mail for a domain goes, and what DNS says about each place: the lookups of RFC 5321
// §5.1 (MX, implicit MX), RFC 7505 (null MX) and RFC 7672 §2.2 (addresses, then TLSA only below
// secure records, CNAME-expanded name first). Shared by the delivery agent and dane-check.
#include <asio/awaitable.hpp>

#include <random>
#include <string>
#include <vector>

#include "queue/failure.hpp"
#include "relay/options.hpp"
#include "relay/policy/dane_policy.hpp"
#include "tls/client.hpp"

namespace danerelay::dns {
class Lookup;
}

namespace danerelay::relay {

struct NextHop {
  std::string name;
  std::uint16_t port = 25;
  dns::DnssecState mx_dnssec = dns::DnssecState::kSecure;  // of the MX RRset that named it
  bool ip_literal = false;
  bool fallback = false;  // a route's fallback host: tried after every other one failed
};

// The hosts in the order to try them, or (when `hosts` is empty) why there are none.
struct NextHops {
  std::vector<NextHop> hosts;
  bool permanent = false;  // NXDOMAIN (5.1.2) or null MX (5.1.10); else a DNS failure (4.4.3)
  std::string status;
  std::string reason;
  queue::Cause cause = queue::Cause::kNone;  // kRecipientDomain, kDns or kDnssecInvalid
  bool routed = false;  // from a route: every host is tried (no [delivery] max_mx_hosts)
};

// The recipient domain's MX hosts, or with `route` its hosts then its fallback hosts (a
// bracketed host as it is, an unbracketed one by its MX hosts). `rng` orders MX hosts of equal
// preference (RFC 5321 §5.1).
asio::awaitable<NextHops> FindNextHops(dns::Lookup& resolver, const std::string& domain,
                                       const DeliveryOptions& options, std::mt19937& rng,
                                       const Route* route = nullptr);

struct HostPlan {
  HostDnsFacts facts;
  std::vector<std::string> addresses;  // IPv4 first, then IPv6
  std::string tlsa_base;               // where the TLSA records were looked up
  bool no_address = false;             // the name exists but has no A/AAAA records
};

asio::awaitable<HostPlan> ResolveHost(dns::Lookup& resolver, const NextHop& hop);

// RFC 7672 §3.2.2: the TLSA base domain is the reference name; the MX host name and the
// next-hop (recipient) domain are accepted too.
tls::DaneSetup MakeDaneSetup(const HostPlan& plan, const NextHop& hop, const std::string& domain,
                             const PolicyDecision& decision);

}  // namespace danerelay::relay
