#pragma once
// The DANE policy decision for one MX host: relay/DESIGN.md's table, steps 1-5, in one pure
// function. Steps 6-8 (STARTTLS offered? handshake? certificate matches?) happen on the connection
// and are judged by RequirementMet() below.
#include <optional>
#include <string>
#include <vector>

#include "dns/records.hpp"
#include "queue/failure.hpp"
#include "tls/client.hpp"

namespace danerelay::relay {

enum class DaneMode { kOpportunistic, kMandatory };

// What DNS said about one MX host. `tlsa` is absent when it was not looked up (RFC 7672 §2.2:
// only when the host's address records are secure, or the host name is a secure alias).
struct HostDnsFacts {
  dns::DnssecState mx = dns::DnssecState::kSecure;  // of the MX RRset (a static route: secure)
  dns::DnssecState address = dns::DnssecState::kInsecure;
  bool address_failed = false;  // the A/AAAA lookup failed (SERVFAIL, timeout, bogus)
  // The addresses are insecure because a CNAME chain leads into an unsigned zone, but the MX
  // host name's own CNAME record is signed: TLSA records at that name still apply (danerelay(7),
  // CNAMES). `alias_failed`: asking for that CNAME record failed.
  bool secure_alias = false;
  bool alias_failed = false;
  std::optional<dns::TlsaAnswer> tlsa;
};

// "secure", "insecure", "failed", or "insecure, behind a secure CNAME".
std::string DescribeAddress(const HostDnsFacts& facts);

// The decision's TLS requirement (tls/client.hpp: the client below carries it out).
using TlsRequirement = tls::Requirement;

struct PolicyDecision {
  bool defer = false;  // do not use this host
  std::string status;  // enhanced status when deferring: "4.4.3" (DNS) or "4.7.5"
  std::string reason;  // plain words for logs and the queue
  queue::Cause cause = queue::Cause::kNone;  // why, when deferring
  int step = 0;                              // the row of the table that decided (1-8)
  TlsRequirement tls = TlsRequirement::kMay;
  std::vector<dns::TlsaRecord> usable;  // for kDane
};

PolicyDecision Decide(DaneMode mode, const HostDnsFacts& facts);

// Whether the MX domain is under mandatory DANE: exact names, or ".example.org" for the domain
// and all its subdomains. Case-insensitive.
bool IsMandatory(const std::vector<std::string>& mandatory_domains, std::string_view domain);

}  // namespace danerelay::relay
