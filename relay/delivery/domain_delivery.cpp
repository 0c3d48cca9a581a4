#include "relay/delivery/domain_delivery.hpp"

#include <spdlog/spdlog.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <span>

#include "dns/idn.hpp"
#include "dns/lookup.hpp"
#include "relay/daemon/logging.hpp"
#include "relay/daemon/metrics.hpp"
#include "relay/delivery/host_planner.hpp"
#include "relay/health/resolver_health.hpp"
#include "relay/network.hpp"
#include "relay/policy/next_hop.hpp"
#include "relay/policy/sts_policies.hpp"

namespace danerelay::relay {
namespace {

using queue::Cause;
using queue::RecipientState;

// "secure: 3 1 1 AB..", "secure, no records", "" when TLSA was not looked up.
std::string DescribeTlsa(const std::optional<dns::TlsaAnswer>& t) {
  if (!t) return "";
  std::string s(dns::ToString(t->dnssec));
  if (t->rcode == dns::Rcode::kNoData || t->rcode == dns::Rcode::kNxDomain) {
    return s + ", no records";
  }
  if (t->rcode == dns::Rcode::kFailed) return s + ", lookup failed: " + t->why;
  for (size_t i = 0; i < t->records.size(); ++i) {
    s += (i == 0 ? ": " : ", ") + t->records[i].ToString();
  }
  return s;
}

// Where one delivery's time went, as Postfix's delays=a/b/c/d: in the queue before this
// attempt, DNS (MX, addresses, TLSA), connection setup with greeting, EHLO and TLS, and the
// transaction itself.
struct Delays {
  queue::TimePoint arrival;
  queue::TimePoint started;
  std::chrono::steady_clock::duration dns{}, connect{}, transfer{};
};

// Seconds as Postfix writes them (delay_logging_resolution_limit = 2): two decimals at most,
// no trailing zeros, whole seconds from 10 on: "0", "0.04", "1.2", "35".
std::string Seconds(std::chrono::duration<double> d) {
  const double s = std::max(0.0, d.count());
  if (s >= 10) return fmt::format("{:.0f}", s);
  std::string out = fmt::format("{:.2f}", s);
  while (out.back() == '0') out.pop_back();
  if (out.back() == '.') out.pop_back();
  return out;
}

// RFC 8689 §4.2.1: a "TLS-Required: No" header field in the message header.
bool TlsRequiredNo(std::string_view content) {
  return LowerAscii(queue::HeaderValue(content, "TLS-Required")) == "no";
}

void CountDane(const char* outcome) {
  if (outcome) Metrics::Get().Add("danerelay_dane_total", fmt::format("outcome=\"{}\"", outcome));
}

void LogDisposition(const std::string& id, const std::string& rcpt, const std::string& relay,
                    const queue::RecipientUpdate& u, const Delays& d) {
  const char* status = u.state == RecipientState::kDelivered ? "sent"
                       : u.state == RecipientState::kFailed  ? "bounced"
                                                             : "deferred";
  Metrics::Get().Add("danerelay_deliveries_total", fmt::format("outcome=\"{}\"", status));
  Log(Service::kSmtp)
      .info("{}: to=<{}>, relay={}, delay={}, delays={}/{}/{}/{}, dsn={}, status={} ({})", id, rcpt,
            relay.empty() ? "none" : relay, Seconds(queue::Clock::now() - d.arrival),
            Seconds(d.started - d.arrival), Seconds(d.dns), Seconds(d.connect), Seconds(d.transfer),
            u.status, status, u.reply);
}

// Every recipient of `m` gets the same outcome.
void All(const queue::MessageInfo& m, RecipientState state, const queue::Failure& f,
         const std::string& remote, DomainOutcome& out) {
  for (const auto& r : m.recipients) {
    queue::RecipientUpdate u{r.index, state, std::nullopt, f.status, f.text, remote};
    u.cause = f.cause;
    out.updates.push_back(std::move(u));
  }
}

// What an attempt carries besides the facts: the DANE testing or MTA-STS testing notes, the
// MTA-STS policy it was made under, and our end of its connection.
struct AttemptTags {
  std::string note;
  std::string mta_sts;
  std::string sending_ip;
  // RFC 8461 §5: under a testing policy, the RFC 8460 result type of what enforce would have
  // refused (the session is let through, and still reported as a failure).
  std::string testing_result_type;
  void Note(const std::string& text) { note += (note.empty() ? "" : "; ") + text; }
};

queue::AttemptRecord Attempt(int index, const NextHop& host, const HostDnsFacts& facts,
                             const std::string& ip, const std::string& verdict,
                             const std::string& matched, const std::string& reply,
                             const std::string& status, const AttemptTags& tags = {}) {
  queue::AttemptRecord a;
  a.recipient_index = index;
  a.time = queue::Clock::now();
  a.mx_host = host.name;
  a.ip = ip;
  a.dnssec_mx = std::string(dns::ToString(facts.mx));
  a.dnssec_address = DescribeAddress(facts);
  a.dnssec_tlsa = DescribeTlsa(facts.tlsa);
  a.tls_verdict = verdict;
  a.tlsa_record = matched;
  a.reply = reply;
  a.status = status;
  a.note = tags.note;
  a.mta_sts = tags.mta_sts;
  a.sending_ip = tags.sending_ip;
  a.result_type = tags.testing_result_type;
  return a;
}

void RecordHost(const queue::MessageInfo& m, const NextHop& host, const HostDnsFacts& facts,
                const std::string& ip, const std::string& verdict, const queue::Failure& f,
                const std::string& matched, DomainOutcome& out, const AttemptTags& tags = {}) {
  for (const auto& r : m.recipients) {
    out.attempts.push_back(Attempt(r.index, host, facts, ip, verdict.empty() ? "none" : verdict,
                                   matched, f.text, f.status, tags));
    if (!f.result_type.empty()) out.attempts.back().result_type = f.result_type;
  }
}

queue::Failure Fail(queue::Cause cause, std::string status, std::string text) {
  return {cause, std::move(status), queue::ResultType(cause), std::move(text)};
}

}  // namespace

asio::awaitable<DomainOutcome> DeliverDomain(DomainDeliveryContext ctx, const queue::MessageInfo& m,
                                             const std::string& content,
                                             const std::string& recipient_domain) {
  DomainOutcome out;
  using SteadyClock = std::chrono::steady_clock;
  Delays delays{m.arrival, queue::Clock::now()};
  auto domain_policy = PolicyFor(ctx.options, recipient_domain);
  const std::string domain = domain_policy ? domain_policy->domain : recipient_domain;
  // Deferred updates carry no next attempt: SchedulePass decides when (queue/retry.hpp).
  std::string last_remote;  // the last MX host that was actually contacted
  auto finish = [&](RecipientState state, const queue::Failure& f, const std::string& relay) {
    All(m, state, f, last_remote, out);
    for (size_t i = 0; i < m.recipients.size(); ++i) {
      LogDisposition(m.id, m.recipients[i].address, relay,
                     out.updates[out.updates.size() - m.recipients.size() + i], delays);
    }
  };

  if (!domain_policy) {
    finish(RecipientState::kFailed,
           Fail(Cause::kRecipientDomain, "5.1.2",
                fmt::format("Recipient domain {} is {}", queue::Printable(recipient_domain, 255),
                            domain_policy.error())),
           "");
    co_return out;
  }
  DomainPolicy& policy = *domain_policy;
  policy.requiretls = m.requiretls;

  // While the resolver's self-check fails, no answer can be trusted to say "unsigned": defer
  // (always for mandatory DANE; otherwise unless the operator chose to deliver anyway).
  if (ctx.health && !ctx.health->ValidationWorks()) {
    if (policy.mode == DaneMode::kMandatory || !ctx.health->DeliverAnyway()) {
      CountDane("dns_failure");
      finish(RecipientState::kDeferred,
             Fail(Cause::kResolverNotValidating, "4.4.3",
                  std::string(kValidationNotWorking) + " (" + ctx.health->Problem() + ")"),
             "");
      co_return out;
    }
    Log(Service::kSmtp)
        .warn("{}: delivering to {} although DNSSEC validation is not working ({})", m.id, domain,
              ctx.health->Problem());
  }

  // The next hops: a static route, or the MX RRset (RFC 5321 §5.1).
  auto dns_started = SteadyClock::now();
  const NextHops hops = co_await FindNextHops(ctx.resolver, domain, ctx.options, ctx.rng);
  delays.dns += SteadyClock::now() - dns_started;
  if (hops.hosts.empty()) {
    if (!hops.permanent) CountDane("dns_failure");  // the MX lookup failed or was bogus
    // The attempt ended in DNS: recorded like any other, with no host (queue show lists it).
    for (const auto& r : m.recipients) {
      queue::AttemptRecord a;
      a.recipient_index = r.index;
      a.time = queue::Clock::now();
      a.dnssec_mx = hops.permanent ? "" : "failed";
      a.tls_verdict = "none";
      a.reply = hops.reason;
      a.status = hops.status;
      a.result_type = queue::ResultType(hops.cause);
      out.attempts.push_back(std::move(a));
    }
    finish(hops.permanent ? RecipientState::kFailed : RecipientState::kDeferred,
           Fail(hops.cause, hops.status, hops.reason), "");
    co_return out;
  }

  // The MTA-STS policy, for MX-based delivery (not for [routes]).
  StsFinding sts_found;
  // RFC 8689 §4.2.1: "TLS-Required: No" (without REQUIRETLS) sets MTA-STS aside for this
  // message; DANE is never set aside.
  const bool tls_required_no = !m.requiretls && TlsRequiredNo(content);
  if (tls_required_no) {
    Log(Service::kSmtp).info("{}: TLS-Required: No; MTA-STS is not applied to this message", m.id);
  }
  if (ctx.sts && !tls_required_no) {
    dns_started = SteadyClock::now();
    sts_found = co_await FindSts(*ctx.sts, ctx.options, domain);
    delays.dns += SteadyClock::now() - dns_started;
    if (!sts_found.lookup.problem.empty()) {
      Log(Service::kSmtp)
          .info("{}: MTA-STS for {}: {}{}", m.id, domain, sts_found.lookup.problem,
                sts_found.lookup.policy ? " (the cached policy applies)" : "");
    }
  }
  policy.sts = sts_found.policy;

  queue::Failure last = Fail(Cause::kDns, "4.4.3", "no MX host could be used");
  const std::span<const NextHop> hosts = HostsToTry(hops, ctx.options);
  if (hosts.size() < hops.hosts.size()) {
    Log(Service::kSmtp)
        .info("{}: {} has {} MX hosts; trying the first {} ([delivery] max_mx_hosts)", m.id, domain,
              hops.hosts.size(), hosts.size());
  }
  std::uint32_t addresses_tried = 0;
  // RFC 5321 §5.1: a host that is ourselves is discarded with every less preferred one. When
  // no more preferred host was tried, the mail has nowhere to go but back to us: 5.4.6 (as
  // Postfix). Returns true when the pass is over.
  bool reached_myself = false;
  auto loops_back = [&](const NextHop& host, const HostDnsFacts& facts, const std::string& ip,
                        const std::string& why, const AttemptTags& tags) {
    Log(Service::kSmtp).warn("{}: {}", m.id, why);
    Metrics::Get().Add("danerelay_loops_total");
    const bool first = out.attempts.empty();
    const queue::Failure loop = Fail(Cause::kLoop, "5.4.6", why);
    RecordHost(m, host, facts, ip, "", loop, "", out, tags);
    reached_myself = true;
    if (first) finish(RecipientState::kFailed, loop, "");
    return first;
  };
  for (const NextHop& host : hosts) {
    if (reached_myself) break;
    if (addresses_tried >= ctx.options.max_addresses) {
      Log(Service::kSmtp)
          .info("{}: {} addresses tried for {}; no more this time ([delivery] max_addresses)", m.id,
                addresses_tried, domain);
      break;
    }
    dns_started = SteadyClock::now();
    const HostDecision plan =
        co_await PlanHost(ctx.resolver, host, policy, ctx.options, ctx.helo_name, ctx.tls_context);
    delays.dns += SteadyClock::now() - dns_started;
    const HostDnsFacts& facts = plan.dns.facts;
    const PolicyDecision& decision = plan.decision;
    AttemptTags tags;
    if (plan.dns.no_address) {
      last = *plan.skip;
      RecordHost(m, host, facts, "", "", last, "", out);
      continue;
    }
    // Steps 2-5 are where the modes differ; from step 6 on both defer alike.
    if (const auto& strict = plan.would_defer) {
      std::string_view why = strict->reason;
      if (why.starts_with("mandatory DANE: ")) why.remove_prefix(16);
      tags.Note(fmt::format("DANE testing: mandatory DANE would defer: {} {} (step {})",
                            strict->status, why, strict->step));
      Metrics::Get().Add("danerelay_dane_testing_would_defer_total");
      Log(Service::kSmtp)
          .warn(
              "{}: DANE testing for {}: {} would be deferred under mandatory DANE: {} (step {}); "
              "delivering under opportunistic DANE",
              m.id, domain, host.name, why, strict->step);
    }
    // relay/DESIGN.md's table, as counted: steps 1-5 decide before any connection.
    if (decision.tls != TlsRequirement::kDane || decision.defer) {
      CountDane(decision.step == 1   ? "dns_failure"
                : decision.step <= 3 ? "insecure"
                : decision.step == 4 ? "no_tlsa"
                                     : "unusable_tlsa");
    }
    if (decision.defer) {
      last = *plan.skip;
      Log(Service::kSmtp)
          .info("{}: {} not used: {} (DANE step {})", m.id, host.name, decision.reason,
                decision.step);
      RecordHost(m, host, facts, "", "", last, "", out, tags);
      continue;
    }
    if (sts_found.policy)
      tags.mta_sts = sts_found.label + (plan.dane_applies ? ", DANE applies" : "");
    if (!sts_found.missing.empty() && !plan.dane_applies) tags.mta_sts = sts_found.missing;
    if (!plan.sts_mismatch.empty()) {
      tags.Note("MTA-STS testing: " + plan.sts_mismatch);
      tags.testing_result_type = queue::ResultType(Cause::kStsMxMismatch);
      Log(Service::kSmtp).warn("{}: MTA-STS testing: {}", m.id, plan.sts_mismatch);
    }
    if (plan.skip) {  // MTA-STS enforce without this host, or REQUIRETLS unprotected
      last = *plan.skip;
      Log(Service::kSmtp).info("{}: {} not used: {}", m.id, host.name, last.text);
      RecordHost(m, host, facts, "", "", last, "", out, tags);
      continue;
    }
    ClientRequest req = plan.request;
    req.message = &m;
    req.content = &content;
    for (const auto& ip : plan.dns.addresses) {
      if (addresses_tried++ >= ctx.options.max_addresses) break;
      if (ReachesListener(ctx.options.own_listeners, ip, host.port)) {
        if (loops_back(host, facts, ip,
                       fmt::format("mail for {} loops back to myself ({}[{}]:{} is where I listen)",
                                   domain, host.name, ip, host.port),
                       tags)) {
          co_return out;
        }
        break;
      }
      const AddressResult tried = co_await Connect(req, ip, ctx.connections);
      if (const auto& first = tried.handshake_failed) {
        AttemptTags first_tags = tags;
        first_tags.sending_ip = first->local_ip;
        RecordHost(m, host, facts, ip, "failed", first->failure, "", out, first_tags);
        delays.connect += first->connect_time;
      }
      const ClientResult& r = tried.result;
      delays.connect += r.connect_time;
      delays.transfer += r.transfer_time;
      const std::string verdict = r.verdict ? std::string(tls::ToString(r.verdict->kind)) : "none";
      AttemptTags host_tags = tags;
      host_tags.sending_ip = r.local_ip;
      if (plan.sts_mode == sts::Mode::kTesting &&
          (!r.verdict || r.verdict->kind != tls::Verdict::Kind::kTrusted)) {
        const std::string why =
            r.verdict ? fmt::format("the certificate of {}[{}] is not valid under WebPKI ({})",
                                    host.name, ip, r.verdict->reason)
                      : fmt::format("no TLS with {}[{}]", host.name, ip);
        host_tags.Note("MTA-STS testing: enforce would defer: " + why);
        // The type enforce would have failed it with. Without TLS: a session that went on in
        // plain text (STARTTLS not offered or refused); not the retry after a failed handshake
        // (that failure is recorded), nor a connection that failed (no TLS matter).
        if (host_tags.testing_result_type.empty()) {
          host_tags.testing_result_type =
              r.verdict ? CertificateResultType(*r.verdict, Cause::kStsNotTrusted)
              : !r.host_failed && !tried.handshake_failed
                  ? queue::ResultType(Cause::kStartTlsNotOffered)
                  : "";
        }
        Log(Service::kSmtp)
            .warn("{}: MTA-STS testing for {}: enforce would defer: {}", m.id, domain, why);
      }
      if (r.verdict || !r.host_failed) {
        Metrics::Get().Add("danerelay_tls_verdicts_total", fmt::format("verdict=\"{}\"", verdict));
      }
      if (decision.tls == TlsRequirement::kDane) {
        CountDane(r.verdict && r.verdict->kind == tls::Verdict::Kind::kVerified ? "verified"
                  : !r.starttls_offered && r.host_failed                        ? "no_starttls"
                  : r.verdict                                                   ? "mismatch"
                                                                                : nullptr);
      }
      if (r.host_failed && r.loops_back) {
        if (loops_back(host, facts, ip,
                       fmt::format("mail for {} loops back to myself ({})", domain, r.failure.text),
                       host_tags)) {
          co_return out;
        }
        break;
      }
      const std::string matched = r.verdict ? r.verdict->matched_tlsa : "";
      last_remote = host.name;
      if (r.host_failed) {
        last = r.failure;
        Log(Service::kSmtp).info("{}: {}", m.id, r.failure.text);
        RecordHost(m, host, facts, ip, verdict, r.failure, matched, out, host_tags);
        continue;
      }
      const std::string relay = fmt::format("{}[{}]:{}", host.name, ip, host.port);
      for (size_t i = 0; i < m.recipients.size(); ++i) {
        const auto& rc = r.recipients[i];
        queue::RecipientUpdate u{
            m.recipients[i].index, rc.state, std::nullopt, rc.status, rc.reply, host.name};
        u.remote_dsn = r.remote_dsn;
        u.reply_is_remote = rc.from_remote;
        u.cause = rc.cause;
        out.attempts.push_back(Attempt(m.recipients[i].index, host, facts, ip, verdict, matched,
                                       rc.reply, rc.status, host_tags));
        LogDisposition(m.id, m.recipients[i].address, relay, u, delays);
        out.updates.push_back(std::move(u));
      }
      co_return out;
    }
  }
  // No host took the mail: deferred with what the last one said (4.7.5 for TLS and DANE,
  // 4.4.x for DNS and connections).
  // A 5.x.x (REQUIRETLS could not be met: 5.7.10, 5.7.30, RFC 8689 §5) is final; everything
  // else is tried again.
  finish(last.status.starts_with("5.") ? RecipientState::kFailed : RecipientState::kDeferred, last,
         "");
  co_return out;
}

}  // namespace danerelay::relay
