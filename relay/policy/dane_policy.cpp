#include "relay/policy/dane_policy.hpp"

#include <algorithm>
#include <cctype>

#include "relay/network.hpp"
#include "tls/client.hpp"

namespace danerelay::relay {
namespace {

bool Failed(dns::DnssecState s) {
  return s == dns::DnssecState::kBogus || s == dns::DnssecState::kFailed;
}

PolicyDecision Defer(int step, queue::Cause cause, std::string status, std::string reason) {
  PolicyDecision d;
  d.defer = true;
  d.cause = cause;
  d.step = step;
  d.status = std::move(status);
  d.reason = std::move(reason);
  return d;
}

PolicyDecision Use(int step, TlsRequirement tls, std::string reason) {
  PolicyDecision d;
  d.step = step;
  d.tls = tls;
  d.reason = std::move(reason);
  return d;
}

}  // namespace

PolicyDecision Decide(DaneMode mode, const HostDnsFacts& f) {
  const bool mandatory = mode == DaneMode::kMandatory;
  // Step 1: a DNS or DNSSEC error anywhere defers, in both modes; a failed TLSA lookup is never
  // read as "no TLSA" (nothing may downgrade DANE).
  if (Failed(f.mx))
    return Defer(1, queue::Cause::kDnssecInvalid, "4.4.3", "MX lookup failed or DNSSEC-bogus");
  if (f.address_failed || Failed(f.address)) {
    return Defer(1, queue::Cause::kDnssecInvalid, "4.4.3", "address lookup failed or DNSSEC-bogus");
  }
  if (f.alias_failed)
    return Defer(1, queue::Cause::kDnssecInvalid, "4.4.3", "CNAME lookup failed or DNSSEC-bogus");
  if (f.tlsa && (f.tlsa->rcode == dns::Rcode::kFailed || Failed(f.tlsa->dnssec))) {
    return Defer(1, queue::Cause::kDnssecInvalid, "4.4.3", "TLSA lookup failed or DNSSEC-bogus");
  }
  // Step 2.
  if (f.mx != dns::DnssecState::kSecure) {
    return mandatory ? Defer(2, queue::Cause::kDaneRequired, "4.7.5",
                             "mandatory DANE: MX records are not DNSSEC-signed")
                     : Use(2, TlsRequirement::kMay, "MX records are not DNSSEC-signed");
  }
  // Step 3.
  if (f.address != dns::DnssecState::kSecure && !f.secure_alias) {
    return mandatory ? Defer(3, queue::Cause::kDaneRequired, "4.7.5",
                             "mandatory DANE: address records are not DNSSEC-signed")
                     : Use(3, TlsRequirement::kMay, "address records are not DNSSEC-signed");
  }
  // Step 4: only a validated denial (or an insecure TLSA zone, whose records cannot be used)
  // counts as "no TLSA".
  const bool no_tlsa = !f.tlsa || f.tlsa->rcode != dns::Rcode::kNoError ||
                       f.tlsa->dnssec != dns::DnssecState::kSecure || f.tlsa->records.empty();
  if (no_tlsa) {
    return mandatory
               ? Defer(4, queue::Cause::kDaneRequired, "4.7.5", "mandatory DANE: no TLSA records")
               : Use(4, TlsRequirement::kMay, "no TLSA records");
  }
  // Step 5.
  auto usable = tls::UsableForSmtp(f.tlsa->records);
  if (usable.empty()) {
    return mandatory ? Defer(5, queue::Cause::kTlsaUnusable, "4.7.5",
                             "mandatory DANE: no usable TLSA records")
                     : Use(5, TlsRequirement::kEncrypt, "TLSA records present, none usable");
  }
  PolicyDecision d = Use(6, TlsRequirement::kDane, "usable TLSA records");
  d.usable = std::move(usable);
  return d;
}

std::string DescribeAddress(const HostDnsFacts& f) {
  if (f.address_failed) return "failed";
  std::string s(dns::ToString(f.address));
  if (f.secure_alias && f.address != dns::DnssecState::kSecure) s += ", behind a secure CNAME";
  return s;
}

bool IsMandatory(const std::vector<std::string>& mandatory_domains, std::string_view domain) {
  std::string d = LowerAscii(domain);
  if (!d.empty() && d.back() == '.') d.pop_back();
  for (const auto& entry : mandatory_domains) {
    const std::string e = LowerAscii(entry);
    if (e.empty()) continue;
    if (e.front() == '.') {
      const std::string bare = e.substr(1);
      if (d == bare || (d.size() > e.size() && d.ends_with(e))) return true;
    } else if (d == e) {
      return true;
    }
  }
  return false;
}

}  // namespace danerelay::relay
