#include "relay/delivery/host_planner.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "dns/idn.hpp"
#include "relay/network.hpp"

namespace danerelay::relay {

using queue::Cause;

namespace {

// What a policy mode asks of a connection (RFC 8461 §4.2): enforce: STARTTLS and a certificate
// valid for the MX host under WebPKI; testing: that certificate judged, not required.
void ApplyMtaSts(sts::Mode mode, ClientRequest& req) {
  if (mode == sts::Mode::kEnforce) {
    if (req.tls == TlsRequirement::kMay) req.tls = TlsRequirement::kEncrypt;
    req.webpki_check = req.webpki_required = true;
  } else if (mode == sts::Mode::kTesting) {
    req.webpki_check = true;
  }
}

// RFC 8460 §5.3: a report mail outside mandatory DANE goes out under "may" (DomainPolicy).
// Only a failed TLSA lookup is set aside: without MX or address records there is nowhere to go.
void RelaxForReportMail(HostDecision& h) {
  const HostDnsFacts& f = h.dns.facts;
  const bool tlsa_failed_only =
      h.decision.defer && h.decision.step == 1 && f.tlsa && !f.address_failed && !f.alias_failed &&
      f.mx != dns::DnssecState::kBogus && f.mx != dns::DnssecState::kFailed &&
      f.address != dns::DnssecState::kBogus && f.address != dns::DnssecState::kFailed;
  if (h.decision.defer && !tlsa_failed_only) return;
  h.decision.defer = false;
  h.decision.tls = TlsRequirement::kMay;
  h.decision.usable.clear();
  h.decision.reason = "a TLS-RPT report: " + h.decision.reason;
}

bool SecureTlsa(const HostDnsFacts& f) {
  return f.tlsa && f.tlsa->rcode == dns::Rcode::kNoError &&
         f.tlsa->dnssec == dns::DnssecState::kSecure && !f.tlsa->records.empty();
}

// RFC 8460 §4.4: DANE where it applies; else MTA-STS where a policy applies or the domain
// publishes one that could not be had; else TLSA records that are there but unusable (§4.3.1
// tlsa-invalid); else no policy.
ReportPolicy ReportPolicyOf(const DomainPolicy& policy, const HostDecision& h) {
  ReportPolicy r;
  const bool sts =
      !h.decision.defer && !h.dane_applies &&
      ((policy.sts && policy.sts->mode != sts::Mode::kNone) || !policy.sts_problem.empty());
  if (sts) {
    r.type = "sts";
    if (policy.sts) r.sts_id = policy.sts->id;
    r.sts_problem = policy.sts_problem;
  } else if (SecureTlsa(h.dns.facts)) {
    r.type = "tlsa";
    for (const auto& t : h.dns.facts.tlsa->records) r.tlsa.push_back(t.ToString());
  } else {
    r.type = "no-policy-found";
  }
  return r;
}

asio::awaitable<HostDecision> Plan(dns::Lookup& resolver, const NextHop& host,
                                   const DomainPolicy& policy, const DeliveryOptions& options,
                                   const std::string& helo_name,
                                   std::shared_ptr<asio::ssl::context> tls_context);

// A SHA-256 pin as the DANE-EE records that match it: of the whole certificate (3 0 1) and of
// its public key (3 1 1). OpenSSL's DANE code does the matching.
std::vector<dns::TlsaRecord> PinRecords(const std::vector<std::string>& pins) {
  std::vector<dns::TlsaRecord> out;
  for (const std::string& hex : pins) {
    std::vector<std::uint8_t> data;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
      data.push_back(static_cast<std::uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    for (std::uint8_t selector : {0, 1}) out.push_back({3, selector, 1, data});
  }
  return out;
}

// The operator's TLS policy where DANE does not decide: a route's, or a [tls_policy] entry's.
// "dane" and "dane-only" are the DANE table itself; "fingerprint" pins over anything; the
// others give way to DANE where usable TLSA records are (they can only add checks).
void ApplyTlsPolicy(const DomainPolicy& policy, const NextHop& host, HostDecision& h) {
  ClientRequest& req = h.request;
  const TlsSettings& tls = policy.tls;
  switch (tls.policy) {
    case TlsPolicy::kDane:
    case TlsPolicy::kDaneOnly:
      return;
    case TlsPolicy::kFingerprint:
      h.dane_applies = false;
      req.tls = TlsRequirement::kDane;
      req.dane = tls::DaneSetup{LowerAscii(host.name), {}, PinRecords(tls.fingerprints)};
      req.webpki_cause = Cause::kTlsPolicyNotVerified;
      return;
    default:
      break;
  }
  if (h.dane_applies) return;
  req.dane.reset();
  req.tls = tls.policy == TlsPolicy::kVerify || tls.policy == TlsPolicy::kEncrypt
                ? TlsRequirement::kEncrypt
                : TlsRequirement::kMay;
  req.no_tls = tls.policy == TlsPolicy::kNone;
  if (tls.policy == TlsPolicy::kVerify) {
    req.webpki_check = req.webpki_required = true;
    req.webpki_names = tls.names.empty() ? std::vector<std::string>{host.name} : tls.names;
    req.webpki_cause = Cause::kTlsPolicyNotVerified;
  }
}

// What a route adds to the request: implicit TLS, a client certificate, AUTH, the source.
void ApplyRouteAndSource(const DomainPolicy& policy, HostDecision& h) {
  ClientRequest& req = h.request;
  req.implicit_tls = policy.tls.implicit_tls && !req.no_tls;
  req.client_cert_file = policy.tls.client_cert_file;
  req.client_key_file = policy.tls.client_key_file;
  if (policy.route) {
    req.auth = policy.route->auth;
    req.route = policy.route->key;
  }
  req.source_address = policy.source.address;
  req.source_address6 = policy.source.address6;
  if (!policy.source.ehlo_name.empty()) req.helo_name = policy.source.ehlo_name;
  h.dns.addresses = OrderAddresses(std::move(h.dns.addresses), policy.source);
}

}  // namespace

tl::expected<DomainPolicy, std::string> PolicyFor(const DeliveryOptions& options,
                                                  const std::string& recipient_domain,
                                                  bool force_mandatory, std::string_view sender) {
  auto ascii = dns::ToAsciiDomain(recipient_domain);
  if (!ascii) return tl::unexpected(ascii.error());
  DomainPolicy p;
  p.domain = std::move(*ascii);
  p.mode = force_mandatory || IsMandatory(options.mandatory_domains, p.domain)
               ? DaneMode::kMandatory
               : DaneMode::kOpportunistic;
  // [dane] testing_domains: judged as mandatory as well, delivered under the opportunistic rules.
  p.testing = p.mode == DaneMode::kOpportunistic && IsMandatory(options.testing_domains, p.domain);
  p.source = options.source;
  if (const Route* route = FindRoute(options.routes, sender, p.domain)) {
    p.route = *route;
    p.tls = route->tls;
    p.source = route->source;
  } else if (const TlsSettings* tls = FindTlsPolicy(options.routes, p.domain)) {
    p.tls = *tls;
  }
  if (p.tls.policy == TlsPolicy::kDaneOnly) p.mode = DaneMode::kMandatory;
  if (p.mode == DaneMode::kMandatory) p.tls.policy = TlsPolicy::kDaneOnly;
  return p;
}

asio::awaitable<StsFinding> FindSts(StsPolicies& sts, const std::string& domain) {
  StsFinding f;
  f.lookup = co_await sts.Get(domain);
  const auto& policy = f.lookup.policy;
  if (policy && policy->mode != sts::Mode::kNone) {
    f.policy = policy;
    f.label = fmt::format("{} id={}{}", sts::ToString(policy->mode), policy->id,
                          f.lookup.cached ? " (cached)" : "");
  } else if (!policy && !f.lookup.problem_type.empty()) {
    f.missing =
        fmt::format("{}{}: {}", sts::kNoStsPolicyLabel, f.lookup.problem_type, f.lookup.problem);
  }
  co_return f;
}

std::span<const NextHop> HostsToTry(const NextHops& hops, const DeliveryOptions& options) {
  if (hops.routed) return hops.hosts;
  return std::span<const NextHop>(hops.hosts)
      .first(std::min<size_t>(hops.hosts.size(), options.max_mx_hosts));
}

asio::awaitable<HostDecision> PlanHost(dns::Lookup& resolver, const NextHop& host,
                                       const DomainPolicy& policy, const DeliveryOptions& options,
                                       const std::string& helo_name,
                                       std::shared_ptr<asio::ssl::context> tls_context) {
  HostDecision h = co_await Plan(resolver, host, policy, options, helo_name, tls_context);
  h.report = ReportPolicyOf(policy, h);
  // §4.3.1: TLSA records, none usable: DANE could not be had (opportunistic DANE goes on
  // under "encrypt", mandatory DANE defers with this type already).
  if (h.report.type == "tlsa" && !h.dane_applies && !policy.tls_report) {
    h.session_result_type = queue::ResultType(Cause::kTlsaUnusable);
  }
  co_return h;
}

namespace {

asio::awaitable<HostDecision> Plan(dns::Lookup& resolver, const NextHop& host,
                                   const DomainPolicy& policy, const DeliveryOptions& options,
                                   const std::string& helo_name,
                                   std::shared_ptr<asio::ssl::context> tls_context) {
  HostDecision h;
  h.dns = co_await ResolveHost(resolver, host);
  if (h.dns.no_address) {
    h.skip = queue::Failure{Cause::kNoAddress, "4.4.4", "",
                            fmt::format("no address for MX host {}", host.name)};
    co_return h;
  }
  h.decision = Decide(policy.mode, h.dns.facts);
  const bool report_mail = policy.tls_report && policy.mode != DaneMode::kMandatory;
  if (report_mail) RelaxForReportMail(h);
  if (policy.testing && !report_mail) {
    PolicyDecision strict = Decide(DaneMode::kMandatory, h.dns.facts);
    if (strict.defer && !h.decision.defer) h.would_defer = std::move(strict);
  }
  if (h.decision.defer) {
    h.skip =
        queue::Failure{h.decision.cause, h.decision.status, queue::ResultType(h.decision.cause),
                       fmt::format("{}: {}", host.name, h.decision.reason)};
    co_return h;
  }
  // MTA-STS (RFC 8461) where DANE does not apply (§2: DANE wins where TLSA records do), and
  // the operator's table names no other TLS policy for the domain.
  h.dane_applies = h.decision.tls == TlsRequirement::kDane;
  const bool dane_policy =
      policy.tls.policy == TlsPolicy::kDane || policy.tls.policy == TlsPolicy::kDaneOnly;
  h.sts_mx_allowed = policy.sts && sts::MxAllowed(*policy.sts, host.name);
  h.sts_mode = policy.sts && !h.dane_applies && !report_mail && dane_policy ? policy.sts->mode
                                                                            : sts::Mode::kNone;
  if (h.sts_mode != sts::Mode::kNone && !h.sts_mx_allowed) {
    const std::string why = fmt::format("{} does not match the MTA-STS policy of {} (mx: {})",
                                        host.name, policy.domain, fmt::join(policy.sts->mx, ", "));
    if (h.sts_mode == sts::Mode::kEnforce) {
      h.skip = queue::Failure{Cause::kStsMxMismatch, "4.7.5",
                              queue::ResultType(Cause::kStsMxMismatch), why};
      co_return h;
    }
    h.sts_mismatch = why;
  }
  ClientRequest& req = h.request;
  req.port = host.port;
  req.mx_host = host.name;
  req.helo_name = helo_name;
  req.tls = h.decision.tls;
  if (h.dane_applies) req.dane = MakeDaneSetup(h.dns, host, policy.domain, h.decision);
  ApplyMtaSts(h.sts_mode, req);
  // A report mail too: the relaxation above is of what the recipient domain publishes (its
  // TLSA and MTA-STS records, which may be the very failure reported). A route's or a
  // [tls_policy] entry's verify, fingerprint, encrypt or none is the operator's own choice for
  // that peer (a smarthost's credentials may depend on it) and is never weakened.
  ApplyTlsPolicy(policy, host, h);
  ApplyRouteAndSource(policy, h);
  if (h.dns.addresses.empty()) {
    h.skip = queue::Failure{Cause::kNoAddress, "4.4.4", "",
                            fmt::format("no address of {} in the address families allowed "
                                        "([delivery] address_families)",
                                        host.name)};
    co_return h;
  }
  if (policy.requiretls) {
    // RFC 8689 §4.2.1: TLS authenticated by DANE, or by an MTA-STS policy that names the host
    // (its certificate then valid under WebPKI, whatever the policy's mode), or by the
    // operator's "verify" or "fingerprint" (a trusted chain, or the pinned key).
    const bool by_operator = Authenticates(policy.tls.policy);
    if (!h.dane_applies && !h.sts_mx_allowed && !by_operator) {
      // RFC 8689 §5: "Unable to establish TLS-protected SMTP session", 5.7.10 (X.7.10
      // "Encryption Needed", RFC 5248); 5.7.30 is for a server without REQUIRETLS.
      h.skip = queue::Failure{
          Cause::kRequireTlsUnprotected, "5.7.10", "",
          fmt::format("REQUIRETLS: {} is authenticated neither by DANE nor by an MTA-STS policy",
                      host.name),
          /*permanent=*/true};
      co_return h;
    }
    if (!h.dane_applies && !by_operator) ApplyMtaSts(sts::Mode::kEnforce, req);
    req.requiretls = true;
  }
  req.tls_context = std::move(tls_context);
  req.timeouts = options.timeouts;
  req.messages_per_connection = options.messages_per_connection;
  co_return h;
}

}  // namespace

asio::awaitable<AddressResult> Connect(ClientRequest request, const std::string& ip,
                                       ConnectionCache* cache) {
  request.ip = ip;
  request.plaintext_only = false;
  AddressResult out;
  out.result = co_await DeliverOverSmtp(request, cache);
  const ClientResult& r = out.result;
  if (r.host_failed && r.retry_plaintext && request.tls == TlsRequirement::kMay) {
    // "may": a failed handshake is retried once in plain text.
    out.handshake_failed = std::move(out.result);
    request.plaintext_only = true;
    out.result = co_await DeliverOverSmtp(request, cache);
  }
  co_return out;
}

}  // namespace danerelay::relay
