#include "relay/delivery/domain_delivery.hpp"

#include <spdlog/spdlog.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdlib>
#include <span>

#include "dns/idn.hpp"
#include "dns/lookup.hpp"
#include "relay/daemon/logging.hpp"
#include "relay/daemon/metrics.hpp"
#include "relay/delivery/host_planner.hpp"
#include "relay/delivery/sites.hpp"
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
  std::int64_t session = 0;  // the connection's (ClientResult::session); 0: none was made
  // RFC 8461 §5: under a testing policy, the RFC 8460 result type of what enforce would have
  // refused (the session is let through, and still reported as a failure).
  std::string testing_result_type;
  ReportPolicy report;              // RFC 8460 §4.4, as the host planner decided it
  std::string session_result_type;  // HostDecision::session_result_type
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
  a.session = tags.session;
  a.result_type =
      tags.testing_result_type.empty() ? tags.session_result_type : tags.testing_result_type;
  a.policy_type = tags.report.type;
  a.tlsa_policy = tags.report.tlsa;
  a.sts_policy_id = tags.report.sts_id;
  a.sts_problem = tags.report.sts_problem;
  return a;
}

void RecordHost(const queue::MessageInfo& m, const NextHop& host, const HostDnsFacts& facts,
                const std::string& ip, const std::string& verdict, const queue::Failure& f,
                const std::string& matched, DomainOutcome& out, AttemptTags tags = {}) {
  // A host passed over before connecting is one session for TLS-RPT, whatever the recipients.
  if (tags.session == 0) tags.session = NewSessionId();
  for (const auto& r : m.recipients) {
    out.attempts.push_back(Attempt(r.index, host, facts, ip, verdict.empty() ? "none" : verdict,
                                   matched, f.text, f.status, tags));
    if (!f.result_type.empty()) out.attempts.back().result_type = f.result_type;
  }
}

queue::Failure Fail(queue::Cause cause, std::string status, std::string text,
                    bool permanent = false) {
  return {cause, std::move(status), queue::ResultType(cause), std::move(text), permanent};
}

// One delivery pass for the recipients of one domain: the domain's plan, then each MX host in
// turn (the host planner decides; this records, logs and counts) until one takes the mail.
class DomainPass {
 public:
  DomainPass(DomainDeliveryContext& ctx, const queue::MessageInfo& m, const std::string& content)
      : ctx_(ctx), m_(m), content_(content), delays_{m.arrival, queue::Clock::now()} {}

  asio::awaitable<DomainOutcome> Run(const std::string& recipient_domain) {
    if (!co_await Prepare(recipient_domain)) co_return std::move(out_);
    // Where it goes decides the shaping (sites.hpp): from the next hops just found, no lookup
    // of its own.
    out_.site = SiteOfHops();
    if (ctx_.admit) {
      out_.admission = co_await ctx_.admit(out_.site);
      if (!out_.admission->go) co_return std::move(out_);
    }
    DomainOutcome out = co_await TryHosts();
    for (auto& a : out.attempts) a.site = out.site;
    co_return out;
  }

 private:
  using SteadyClock = std::chrono::steady_clock;

  std::string SiteOfHops() const {
    if (policy_.route) return SiteOfRoute(*policy_.route);
    std::vector<std::string> hosts;
    for (const auto& h : hops_.hosts) hosts.push_back(h.name);
    std::string site = SiteOfMx(std::move(hosts), ctx_.options.providers);
    return site.empty() ? domain_ : site;
  }

  asio::awaitable<DomainOutcome> TryHosts() {
    const std::span<const NextHop> hosts = HostsToTry(hops_, ctx_.options);
    if (hosts.size() < hops_.hosts.size()) {
      Log(Service::kSmtp)
          .info("{}: {} has {} MX hosts; trying the first {} ([delivery] max_mx_hosts)", m_.id,
                domain_, hops_.hosts.size(), hosts.size());
    }
    for (const NextHop& host : hosts) {
      if (reached_myself_ || out_.throttle) break;
      if (addresses_tried_ >= ctx_.options.max_addresses) {
        Log(Service::kSmtp)
            .info("{}: {} addresses tried for {}; no more this time ([delivery] max_addresses)",
                  m_.id, addresses_tried_, domain_);
        break;
      }
      if (co_await TryHost(host)) co_return std::move(out_);
    }
    // No host took the mail: deferred with what the last one said (4.7.5 for TLS and DANE,
    // 4.4.x for DNS and connections). A permanent failure (REQUIRETLS could not be met: 5.7.10,
    // 5.7.30, RFC 8689 §5) is final; everything else is tried again.
    Finish(last_.permanent ? RecipientState::kFailed : RecipientState::kDeferred, last_, "");
    co_return std::move(out_);
  }

  // A host's failure, the last one so far (its text reworded under DANERELAY_TEST_REWORD).
  void Remember(const queue::Failure& f) {
    last_ = f;
    last_.text = Reworded(f.text);
  }

  // Deferred updates carry no next attempt: SchedulePass decides when (queue/retry.hpp).
  void Finish(RecipientState state, const queue::Failure& f, const std::string& relay) {
    All(m_, state, f, last_remote_, out_);
    for (size_t i = 0; i < m_.recipients.size(); ++i) {
      LogDisposition(m_.id, m_.recipients[i].address, relay,
                     out_.updates[out_.updates.size() - m_.recipients.size() + i], delays_);
    }
  }

  // The domain's side: its policy, the resolver's health, the next hops, MTA-STS. False when the
  // pass is over before any host (the outcome recorded).
  asio::awaitable<bool> Prepare(const std::string& recipient_domain) {
    auto domain_policy = PolicyFor(ctx_.options, recipient_domain, false, m_.sender);
    if (!domain_policy) {
      Finish(RecipientState::kFailed,
             Fail(Cause::kRecipientDomain, "5.1.2",
                  fmt::format("Recipient domain {} is {}", queue::Printable(recipient_domain, 255),
                              domain_policy.error()),
                  /*permanent=*/true),
             "");
      co_return false;
    }
    policy_ = std::move(*domain_policy);
    policy_.requiretls = m_.requiretls;
    policy_.tls_report = m_.tls_report;
    domain_ = policy_.domain;

    // While the resolver's self-check fails, no answer can be trusted to say "unsigned": defer
    // (always for mandatory DANE; otherwise unless the operator chose to deliver anyway).
    if (ctx_.health && !ctx_.health->ValidationWorks()) {
      if (policy_.mode == DaneMode::kMandatory || !ctx_.health->DeliverAnyway()) {
        CountDane("dns_failure");
        Finish(RecipientState::kDeferred,
               Fail(Cause::kResolverNotValidating, "4.4.3",
                    std::string(kValidationNotWorking) + " (" + ctx_.health->Problem() + ")"),
               "");
        co_return false;
      }
      Log(Service::kSmtp)
          .warn("{}: delivering to {} although DNSSEC validation is not working ({})", m_.id,
                domain_, ctx_.health->Problem());
    }

    // The next hops: a route's hosts, or the MX RRset (RFC 5321 §5.1).
    auto dns_started = SteadyClock::now();
    const Route* route = policy_.route ? &*policy_.route : nullptr;
    hops_ = co_await FindNextHops(ctx_.resolver, domain_, ctx_.options, ctx_.rng, route);
    delays_.dns += SteadyClock::now() - dns_started;
    if (hops_.hosts.empty()) {
      if (!hops_.permanent) CountDane("dns_failure");  // the MX lookup failed or was bogus
      // The attempt ended in DNS: recorded like any other, with no host (queue show lists it).
      const std::int64_t session = NewSessionId();
      for (const auto& r : m_.recipients) {
        queue::AttemptRecord a;
        a.session = session;
        a.recipient_index = r.index;
        a.time = queue::Clock::now();
        a.dnssec_mx = hops_.permanent ? "" : "failed";
        a.tls_verdict = "none";
        a.reply = hops_.reason;
        a.status = hops_.status;
        a.result_type = queue::ResultType(hops_.cause);
        out_.attempts.push_back(std::move(a));
      }
      Finish(hops_.permanent ? RecipientState::kFailed : RecipientState::kDeferred,
             Fail(hops_.cause, hops_.status, hops_.reason, hops_.permanent), "");
      co_return false;
    }

    // RFC 8689 §4.2.1: "TLS-Required: No" (without REQUIRETLS) sets MTA-STS aside for this
    // message; DANE is never set aside.
    const bool tls_required_no = !m_.requiretls && TlsRequiredNo(content_);
    if (tls_required_no) {
      Log(Service::kSmtp)
          .info("{}: TLS-Required: No; MTA-STS is not applied to this message", m_.id);
    }
    if (ctx_.sts && !tls_required_no && !policy_.route) {
      dns_started = SteadyClock::now();
      sts_ = co_await FindSts(*ctx_.sts, domain_);
      delays_.dns += SteadyClock::now() - dns_started;
      if (!sts_.lookup.problem.empty()) {
        Log(Service::kSmtp)
            .info("{}: MTA-STS for {}: {}{}", m_.id, domain_, sts_.lookup.problem,
                  sts_.lookup.policy ? " (the cached policy applies)" : "");
      }
    }
    policy_.sts = sts_.policy;
    // With the cached policy or without any (RFC 8460 §4.3.2): reported either way.
    policy_.sts_problem = sts_.lookup.problem_type;
    co_return true;
  }

  // RFC 5321 §5.1: a host that is ourselves is discarded with every less preferred one. When
  // no more preferred host was tried, the mail has nowhere to go but back to us: 5.4.6 (as
  // Postfix). Returns true when the pass is over.
  bool LoopsBack(const NextHop& host, const HostDnsFacts& facts, const std::string& ip,
                 const std::string& why, const AttemptTags& tags) {
    Log(Service::kSmtp).warn("{}: {}", m_.id, why);
    Metrics::Get().Add("danerelay_loops_total");
    const bool first = out_.attempts.empty();
    const queue::Failure loop = Fail(Cause::kLoop, "5.4.6", why, /*permanent=*/true);
    RecordHost(m_, host, facts, ip, "", loop, "", out_, tags);
    reached_myself_ = true;
    if (first) Finish(RecipientState::kFailed, loop, "");
    return first;
  }

  // The host's plan as the attempts record it; nullopt when the host is not used (recorded).
  std::optional<AttemptTags> Usable(const NextHop& host, const HostDecision& plan) {
    const HostDnsFacts& facts = plan.dns.facts;
    const PolicyDecision& decision = plan.decision;
    AttemptTags tags;
    tags.report = plan.report;
    tags.session_result_type = plan.session_result_type;
    if (policy_.route || policy_.tls.explicit_policy) {
      tags.Note(fmt::format("{}tls={}{}", policy_.route ? "route=" + policy_.route->key + ", " : "",
                            ToString(policy_.tls.policy), host.fallback ? ", fallback" : ""));
    }
    if (plan.dns.no_address) {
      Remember(*plan.skip);
      RecordHost(m_, host, facts, "", "", last_, "", out_);
      return std::nullopt;
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
              m_.id, domain_, host.name, why, strict->step);
    }
    // relay/DESIGN.md's table, as counted: steps 1-5 decide before any connection.
    if (decision.tls != TlsRequirement::kDane || decision.defer) {
      CountDane(decision.step == 1   ? "dns_failure"
                : decision.step <= 3 ? "insecure"
                : decision.step == 4 ? "no_tlsa"
                                     : "unusable_tlsa");
    }
    if (decision.defer) {
      Remember(*plan.skip);
      Log(Service::kSmtp)
          .info("{}: {} not used: {} (DANE step {})", m_.id, host.name, decision.reason,
                decision.step);
      RecordHost(m_, host, facts, "", "", last_, "", out_, tags);
      return std::nullopt;
    }
    if (sts_.policy) tags.mta_sts = sts_.label + (plan.dane_applies ? ", DANE applies" : "");
    if (!sts_.missing.empty() && !plan.dane_applies) tags.mta_sts = sts_.missing;
    if (!plan.sts_mismatch.empty()) {
      tags.Note("MTA-STS testing: " + plan.sts_mismatch);
      tags.testing_result_type = queue::ResultType(Cause::kStsMxMismatch);
      Log(Service::kSmtp).warn("{}: MTA-STS testing: {}", m_.id, plan.sts_mismatch);
    }
    if (plan.skip) {  // MTA-STS enforce without this host, or REQUIRETLS unprotected
      Remember(*plan.skip);
      Log(Service::kSmtp).info("{}: {} not used: {}", m_.id, host.name, last_.text);
      RecordHost(m_, host, facts, "", "", last_, "", out_, tags);
      return std::nullopt;
    }
    return tags;
  }

  // Under an MTA-STS testing policy: what enforce would have refused, noted and typed.
  void NoteStsTesting(const NextHop& host, const std::string& ip, const AddressResult& tried,
                      AttemptTags& tags) {
    const ClientResult& r = tried.result;
    if (r.verdict && r.verdict->kind == tls::Verdict::Kind::kTrusted) return;
    const std::string why =
        r.verdict ? fmt::format("the certificate of {}[{}] is not valid under WebPKI ({})",
                                host.name, ip, r.verdict->reason)
                  : fmt::format("no TLS with {}[{}]", host.name, ip);
    tags.Note("MTA-STS testing: enforce would defer: " + why);
    // The type enforce would have failed it with. Without TLS: a session that went on in
    // plain text (STARTTLS not offered or refused); not the retry after a failed handshake
    // (that failure is recorded), nor a connection that failed (no TLS matter).
    if (tags.testing_result_type.empty()) {
      tags.testing_result_type = r.verdict
                                     ? CertificateResultType(*r.verdict, Cause::kStsNotTrusted)
                                 : !r.host_failed && !tried.handshake_failed
                                     ? queue::ResultType(Cause::kStartTlsNotOffered)
                                     : "";
    }
    Log(Service::kSmtp)
        .warn("{}: MTA-STS testing for {}: enforce would defer: {}", m_.id, domain_, why);
  }

  static void CountVerdict(const PolicyDecision& decision, const ClientResult& r,
                           const std::string& verdict) {
    if (r.verdict || !r.host_failed) {
      Metrics::Get().Add("danerelay_tls_verdicts_total", fmt::format("verdict=\"{}\"", verdict));
    }
    if (decision.tls == TlsRequirement::kDane) {
      CountDane(r.verdict && r.verdict->kind == tls::Verdict::Kind::kVerified ? "verified"
                : !r.starttls_offered && r.host_failed                        ? "no_starttls"
                : r.verdict                                                   ? "mismatch"
                                                                              : nullptr);
    }
  }

  // The first of the server's refusals that a [[shaping.on_reply]] rule that acts matches.
  void NoteThrottle(const ClientResult& r, const NextHop& host) {
    if (!ctx_.on_reply || out_.throttle) return;
    for (const auto& reply : r.refusals) {
      const ReplyRule* rule = ctx_.on_reply->Match(reply);
      if (!rule) continue;
      if (rule->Acts()) {
        out_.throttle = DomainOutcome::Throttle{*rule, reply, host.name};
      }
      return;  // the first rule that matches decides, "0s" too
    }
  }

  // Dead destinations: did a server answer at this address?
  void NoteReach(const ClientResult& r) {
    const bool unreachable = r.host_failed && (r.failure.cause == Cause::kConnect ||
                                               r.failure.cause == Cause::kSession ||
                                               r.failure.cause == Cause::kTlsHandshake);
    if (!unreachable) {
      out_.reached = out_.reached || !r.host_failed || r.failure.cause != Cause::kLocalSetup;
      return;
    }
    ++out_.unreachable;
    out_.last_unreachable = r.failure.text;
  }

  // Tries the host's addresses. True when the pass is over: a host took the mail (each
  // recipient has the server's answer), or the mail loops back to us.
  asio::awaitable<bool> TryHost(const NextHop& host) {
    auto dns_started = SteadyClock::now();
    const HostDecision plan = co_await PlanHost(ctx_.resolver, host, policy_, ctx_.options,
                                                ctx_.helo_name, ctx_.tls_context);
    delays_.dns += SteadyClock::now() - dns_started;
    const std::optional<AttemptTags> tags = Usable(host, plan);
    if (!tags) co_return false;
    const HostDnsFacts& facts = plan.dns.facts;
    ClientRequest req = plan.request;
    req.messages_per_connection = MessagesPerConnection(ctx_.options, out_.site);
    req.site = out_.site;
    req.message = &m_;
    req.content = &content_;
    for (const auto& ip : plan.dns.addresses) {
      if (addresses_tried_++ >= ctx_.options.max_addresses) break;
      if (ReachesListener(ctx_.options.own_listeners, ip, host.port)) {
        co_return LoopsBack(
            host, facts, ip,
            fmt::format("mail for {} loops back to myself ({}[{}]:{} is where I listen)", domain_,
                        host.name, ip, host.port),
            *tags);
      }
      const AddressResult tried = co_await Connect(req, ip, ctx_.connections);
      if (tried.handshake_failed) NoteThrottle(*tried.handshake_failed, host);
      NoteThrottle(tried.result, host);
      NoteReach(tried.result);
      if (const auto& first = tried.handshake_failed) {
        AttemptTags first_tags = *tags;
        first_tags.sending_ip = first->local_ip;
        first_tags.session = first->session;
        RecordHost(m_, host, facts, ip, "failed", first->failure, "", out_, first_tags);
        delays_.connect += first->connect_time;
      }
      const ClientResult& r = tried.result;
      delays_.connect += r.connect_time;
      delays_.transfer += r.transfer_time;
      const std::string verdict = r.verdict ? std::string(tls::ToString(r.verdict->kind)) : "none";
      AttemptTags host_tags = *tags;
      host_tags.sending_ip = r.local_ip;
      host_tags.session = r.session;
      if (plan.sts_mode == sts::Mode::kTesting) NoteStsTesting(host, ip, tried, host_tags);
      CountVerdict(plan.decision, r, verdict);
      if (r.host_failed && r.loops_back) {
        co_return LoopsBack(
            host, facts, ip,
            fmt::format("mail for {} loops back to myself ({})", domain_, r.failure.text),
            host_tags);
      }
      const std::string matched = r.verdict ? r.verdict->matched_tlsa : "";
      last_remote_ = host.name;
      if (r.host_failed) {
        Remember(r.failure);
        Log(Service::kSmtp).info("{}: {}", m_.id, r.failure.text);
        RecordHost(m_, host, facts, ip, verdict, r.failure, matched, out_, host_tags);
        if (out_.throttle) co_return false;  // the domain is suspended: no other address
        continue;
      }
      const std::string relay = fmt::format("{}[{}]:{}", host.name, ip, host.port);
      if (policy_.route) {
        // Its own line: the disposition lines keep Postfix's shape (pflogsumm reads "relay=X,
        // delay=").
        Log(Service::kSmtp)
            .info("{}: route={}, tls={}, relay={}", m_.id, policy_.route->key,
                  ToString(policy_.tls.policy), relay);
      }
      for (size_t i = 0; i < m_.recipients.size(); ++i) {
        const auto& rc = r.recipients[i];
        queue::RecipientUpdate u{
            m_.recipients[i].index, rc.state, std::nullopt, rc.status, rc.reply, host.name};
        u.remote_dsn = r.remote_dsn;
        u.reply_is_remote = rc.from_remote;
        u.cause = rc.cause;
        out_.attempts.push_back(Attempt(m_.recipients[i].index, host, facts, ip, verdict, matched,
                                        rc.reply, rc.status, host_tags));
        LogDisposition(m_.id, m_.recipients[i].address, relay, u, delays_);
        out_.updates.push_back(std::move(u));
      }
      co_return true;
    }
    co_return false;
  }

  DomainDeliveryContext& ctx_;
  const queue::MessageInfo& m_;
  const std::string& content_;
  DomainOutcome out_;
  Delays delays_;
  DomainPolicy policy_;
  std::string domain_;
  NextHops hops_;
  StsFinding sts_;
  queue::Failure last_ = Fail(Cause::kDns, "4.4.3", "no MX host could be used");
  std::string last_remote_;  // the last MX host that was actually contacted
  std::uint32_t addresses_tried_ = 0;
  bool reached_myself_ = false;
};

}  // namespace

bool RewordTexts() {
  static const bool reword = [] {
    const char* v = std::getenv("DANERELAY_TEST_REWORD");
    return v && std::string_view(v) == "1";
  }();
  return reword;
}

std::string Reworded(const std::string& text) {
  if (!RewordTexts() || text.empty()) return text;
  return "reworded: " + std::string(text.rbegin(), text.rend());
}

asio::awaitable<DomainOutcome> DeliverDomain(DomainDeliveryContext ctx, const queue::MessageInfo& m,
                                             const std::string& content,
                                             const std::string& recipient_domain) {
  DomainPass pass(ctx, m, content);
  co_return co_await pass.Run(recipient_domain);
}

}  // namespace danerelay::relay
