#include "relay/outbound/delivery_agent.hpp"

#include <spdlog/spdlog.h>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <random>

#include "dns/resolver.hpp"
#include "queue/notice.hpp"
#include "queue/retry.hpp"
#include "relay/connection.hpp"
#include "relay/outbound/next_hop.hpp"
#include "relay/outbound/store_bridge.hpp"

namespace danerelay::relay {
namespace {

using queue::RecipientState;

std::string DomainOf(const std::string& address) {
  const auto at = address.rfind('@');
  return LowerAscii(at == std::string::npos ? "" : address.substr(at + 1));
}

// What one domain's recipients get from one pass over its MX hosts.
struct DomainOutcome {
  std::vector<queue::RecipientUpdate> updates;
  std::vector<queue::AttemptRecord> attempts;
};

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

void LogDisposition(const std::string& id, const std::string& rcpt, const std::string& relay,
                    const queue::RecipientUpdate& u) {
  const char* status = u.state == RecipientState::kDelivered ? "sent"
                       : u.state == RecipientState::kFailed  ? "bounced"
                                                             : "deferred";
  spdlog::info("{}: to=<{}>, relay={}, dsn={}, status={} ({})", id, rcpt,
               relay.empty() ? "none" : relay, u.status, status, u.reply);
}

}  // namespace

struct DeliveryAgent::Impl : std::enable_shared_from_this<Impl> {
  asio::io_context& io;
  DeliveryOptions options;
  std::string helo_name;
  dns::Resolver& resolver;
  queue::Committer& committer;
  queue::QueueIdGenerator& ids;
  std::shared_ptr<asio::ssl::context> tls_context;
  asio::steady_timer wake;
  std::uint32_t active = 0;
  ConnectionCache connections{std::chrono::seconds(2)};  // Postfix: 2 s idle time limit
  // Per-destination concurrency: deliveries in progress per domain, and who waits for a slot.
  std::map<std::string, std::uint32_t> per_domain;
  std::map<std::string, std::deque<std::shared_ptr<asio::steady_timer>>> slot_waiters;
  bool stopping = false;
  std::mt19937 rng{std::random_device{}()};

  Impl(asio::io_context& i, DeliveryOptions o, std::string h, dns::Resolver& r, queue::Committer& c,
       queue::QueueIdGenerator& g)
      : io(i),
        options(std::move(o)),
        helo_name(std::move(h)),
        resolver(r),
        committer(c),
        ids(g),
        wake(i) {}

  asio::awaitable<void> Run() {
    auto self = shared_from_this();
    const auto release = [](queue::Store& s) { return s.ReleaseAttempting(queue::Clock::now()); };
    const auto released = co_await OnStore(committer, release);
    if (released && *released > 0) {
      spdlog::info("{} recipients were in delivery when the daemon stopped; retrying them",
                   *released);
    }
    auto last_purge = std::chrono::steady_clock::time_point{};
    while (!stopping) {
      if (std::chrono::steady_clock::now() - last_purge > std::chrono::minutes(1)) {
        last_purge = std::chrono::steady_clock::now();
        const auto before = queue::Clock::now() - options.keep_completed;
        const auto purge = [before](queue::Store& s) { return s.PurgeCompleted(before); };
        (void)co_await OnStore(committer, purge);
      }
      while (!stopping && active < options.max_parallel) {
        const size_t room = options.max_parallel - active;
        const auto claim = [room](queue::Store& s) {
          return s.ClaimDue(queue::Clock::now(), room);
        };
        auto due = co_await OnStore(committer, claim);
        if (!due) {
          spdlog::error("queue: {}", due.error().message);
          break;
        }
        if (due->empty()) break;
        for (auto& m : *due) {
          ++active;
          asio::co_spawn(io, DeliverMessage(std::move(m)), [self](std::exception_ptr e) {
            --self->active;
            self->Wake();
            if (!e) return;
            try {
              std::rethrow_exception(e);
            } catch (const std::exception& ex) {
              spdlog::critical("BUG: delivery ended with an exception: {}", ex.what());
            }
          });
        }
      }
      co_await ExpireOld();
      connections.Sweep(io.get_executor());
      // The queue is looked at every second (an index lookup, not a scan), so that the
      // command line's flush, hold and release take effect within a second.
      wake.expires_after(std::chrono::seconds(1));
      co_await wake.async_wait(kUseTuple);
    }
  }

  void Wake() { wake.cancel(); }

  asio::awaitable<void> AcquireSlot(const std::string& domain) {
    while (per_domain[domain] >= options.max_per_destination) {
      auto waiter = std::make_shared<asio::steady_timer>(io, asio::steady_timer::time_point::max());
      slot_waiters[domain].push_back(waiter);
      co_await waiter->async_wait(kUseTuple);  // woken by ReleaseSlot
    }
    ++per_domain[domain];
  }

  void ReleaseSlot(const std::string& domain) {
    if (--per_domain[domain] == 0) per_domain.erase(domain);
    auto it = slot_waiters.find(domain);
    if (it == slot_waiters.end()) return;
    it->second.front()->cancel();
    it->second.pop_front();
    if (it->second.empty()) slot_waiters.erase(it);
  }

  // max_lifetime holds for every state: held, queued and deferred recipients that were not
  // attempted at their expiry are returned to the sender too (in-flight ones are judged when
  // their attempt ends).
  asio::awaitable<void> ExpireOld() {
    const auto now = queue::Clock::now();
    queue::Store::Selection old;
    old.arrived_before = now - options.retry.max_lifetime;
    const queue::NoticeOptions notice_options{helo_name};
    auto& id_source = ids;
    const auto expire = [old, now, notice_options, &id_source](queue::Store& s) {
      return s.Finish(old, RecipientState::kExpired, "", "", now,
                      [&](const queue::MessageInfo& m, const std::string& content,
                          const std::vector<queue::StoredRecipient>& finished) {
                        return queue::ComposeBounce(m, content, finished, id_source.Next(now), now,
                                                    notice_options);
                      });
    };
    auto expired = co_await OnStore(committer, expire);
    if (!expired) {
      spdlog::error("queue: expiring old mail: {}", expired.error().message);
    } else if (expired->recipients > 0) {
      for (const auto& id : expired->messages) {
        spdlog::info("{}: expired after {}s in the queue, returned to sender", id,
                     options.retry.max_lifetime.count());
      }
    }
  }

  asio::awaitable<void> DeliverMessage(queue::MessageInfo m) {
    auto self = shared_from_this();
    const std::string id = m.id;
    const auto read = [id](queue::Store& s) { return s.GetContent(id); };
    auto content = co_await OnStore(committer, read);
    std::vector<queue::RecipientUpdate> updates;
    std::vector<queue::AttemptRecord> attempts;
    const bool readable = content && *content;
    if (!readable) {
      spdlog::error("{}: cannot read the message: {}", id,
                    content ? "gone" : content.error().message);
      for (const auto& r : m.recipients) {
        updates.push_back(
            {r.index, RecipientState::kDeferred, std::nullopt, "4.3.0", "queue read error", ""});
      }
    } else {
      // Recipients grouped by domain: one transaction per domain (and MX host).
      std::map<std::string, std::vector<queue::StoredRecipient>> by_domain;
      for (const auto& r : m.recipients) by_domain[DomainOf(r.address)].push_back(r);
      for (auto& [domain, rcpts] : by_domain) {
        queue::MessageInfo part = m;
        part.recipients = rcpts;
        co_await AcquireSlot(domain);
        DomainOutcome out = co_await DeliverDomain(part, **content, domain);
        ReleaseSlot(domain);
        updates.insert(updates.end(), out.updates.begin(), out.updates.end());
        attempts.insert(attempts.end(), out.attempts.begin(), out.attempts.end());
      }
    }
    // When the deferred come back, who has expired, and who is told (queue/retry.hpp).
    const auto now = queue::Clock::now();
    queue::PassOutcome pass = queue::SchedulePass(m, std::move(updates), now, options.retry, rng);
    std::vector<queue::NewMessage> notices;
    if (readable) notices = Notices(m, **content, pass, now);
    const auto record = [id, pass, attempts, notices, now](queue::Store& s) {
      return s.RecordDelivery(id, pass.updates, attempts, notices, now);
    };
    auto recorded = co_await OnStore(committer, record);
    if (!recorded) {
      spdlog::error("{}: recording the outcome failed: {}", id, recorded.error().message);
      co_return;
    }
    for (const auto& u : pass.updates) {
      if (u.state == RecipientState::kExpired) {
        spdlog::info("{}: to=<{}>, status=expired, returned to sender ({} {})", id,
                     AddressOf(m, u.index), u.status, u.reply);
      }
    }
    if (m.sender.empty() && std::any_of(pass.updates.begin(), pass.updates.end(), [](auto& u) {
          return u.state == RecipientState::kFailed || u.state == RecipientState::kExpired;
        })) {
      spdlog::warn("{}: undeliverable mail from <> discarded (no bounce to the null sender)", id);
    }
    if (!notices.empty()) Wake();
  }

  static std::string AddressOf(const queue::MessageInfo& m, int index) {
    for (const auto& r : m.recipients) {
      if (r.index == index) return r.address;
    }
    return "?";
  }

  // One bounce per message and pass for all failed recipients; delay warnings and success
  // reports likewise.
  std::vector<queue::NewMessage> Notices(const queue::MessageInfo& m, const std::string& content,
                                         const queue::PassOutcome& pass, queue::TimePoint now) {
    std::vector<queue::NewMessage> out;
    const queue::NoticeOptions notice_options{helo_name};
    if (!pass.bounce.empty()) {
      out.push_back(queue::ComposeNotice(queue::NoticeKind::kFailure, m, content, pass.bounce,
                                         ids.Next(now), now, std::nullopt, notice_options));
      spdlog::info("{}: sender non-delivery notification: {}", m.id, out.back().id);
    }
    // A notice that cannot be delivered gets no notice of its own (no loops); the postmaster
    // may get a copy, unless the undeliverable mail was itself such a copy.
    const bool to_postmaster =
        m.sender.empty() && !options.postmaster.empty() && !pass.failed.empty() &&
        std::none_of(m.recipients.begin(), m.recipients.end(),
                     [&](const auto& r) { return r.address == options.postmaster; });
    if (to_postmaster) {
      queue::NoticeOptions pm = notice_options;
      pm.postmaster = options.postmaster;
      out.push_back(queue::ComposeNotice(queue::NoticeKind::kFailure, m, content, pass.failed,
                                         ids.Next(now), now, std::nullopt, pm));
      spdlog::info("{}: postmaster notification: {}", m.id, out.back().id);
    }
    if (!pass.relayed.empty()) {
      out.push_back(queue::ComposeNotice(queue::NoticeKind::kRelayed, m, content, pass.relayed,
                                         ids.Next(now), now, std::nullopt, notice_options));
      spdlog::info("{}: sender delivery status notification: {}", m.id, out.back().id);
    }
    if (!pass.warn.empty()) {
      out.push_back(queue::ComposeNotice(queue::NoticeKind::kDelay, m, content, pass.warn,
                                         ids.Next(now), now, m.arrival + options.retry.max_lifetime,
                                         notice_options));
      spdlog::info("{}: sender delay notification: {}", m.id, out.back().id);
    }
    return out;
  }

  // Every recipient of `m` gets the same outcome.
  static void All(const queue::MessageInfo& m, RecipientState state,
                  std::optional<queue::TimePoint> next, const std::string& status,
                  const std::string& reply, const std::string& remote, DomainOutcome& out) {
    for (const auto& r : m.recipients) {
      out.updates.push_back({r.index, state, next, status, reply, remote});
    }
  }

  asio::awaitable<DomainOutcome> DeliverDomain(const queue::MessageInfo& m,
                                               const std::string& content,
                                               const std::string& domain) {
    DomainOutcome out;
    const DaneMode mode = IsMandatory(options.mandatory_domains, domain) ? DaneMode::kMandatory
                                                                         : DaneMode::kOpportunistic;
    // Deferred updates carry no next attempt: SchedulePass decides when (queue/retry.hpp).
    std::string last_remote;  // the last MX host that was actually contacted
    auto finish = [&](RecipientState state, std::string status, std::string reason,
                      const std::string& relay) {
      All(m, state, std::nullopt, status, reason, last_remote, out);
      for (size_t i = 0; i < m.recipients.size(); ++i) {
        LogDisposition(m.id, m.recipients[i].address, relay,
                       out.updates[out.updates.size() - m.recipients.size() + i]);
      }
    };

    // The next hops: a static route, or the MX RRset (RFC 5321 §5.1).
    const NextHops hops = co_await FindNextHops(resolver, domain, options, rng);
    if (hops.hosts.empty()) {
      finish(hops.permanent ? RecipientState::kFailed : RecipientState::kDeferred, hops.status,
             hops.reason, "");
      co_return out;
    }

    std::string last_status = "4.4.3", last_reason = "no MX host could be used";
    for (const NextHop& host : hops.hosts) {
      const HostPlan plan = co_await ResolveHost(resolver, host);
      const HostDnsFacts& facts = plan.facts;
      if (plan.no_address) {
        last_status = "4.4.4";
        last_reason = fmt::format("no address for MX host {}", host.name);
        RecordHost(m, host, facts, "", "", last_reason, last_status, "", out);
        continue;
      }
      const PolicyDecision decision = Decide(mode, facts);
      if (decision.defer) {
        last_status = decision.status;
        last_reason = fmt::format("{}: {}", host.name, decision.reason);
        spdlog::info("{}: {} not used: {} (DANE step {})", m.id, host.name, decision.reason,
                     decision.step);
        RecordHost(m, host, facts, "", "", last_reason, last_status, "", out);
        continue;
      }
      ClientRequest req;
      req.port = host.port;
      req.mx_host = host.name;
      req.helo_name = helo_name;
      req.tls = decision.tls;
      if (decision.tls == TlsRequirement::kDane) {
        req.dane = MakeDaneSetup(plan, host, domain, decision);
      }
      req.tls_context = tls_context;
      req.message = &m;
      req.content = &content;
      req.timeouts = options.timeouts;
      for (const auto& ip : plan.addresses) {
        req.ip = ip;
        req.plaintext_only = false;
        ClientResult r = co_await DeliverOverSmtp(req, &connections);
        if (r.host_failed && r.retry_plaintext && decision.tls == TlsRequirement::kMay) {
          // "may": a failed handshake is retried once in plain text.
          RecordHost(m, host, facts, ip, "failed", r.reason, r.status, "", out);
          req.plaintext_only = true;
          r = co_await DeliverOverSmtp(req, &connections);
        }
        const std::string verdict =
            r.verdict ? std::string(tls::ToString(r.verdict->kind)) : "none";
        const std::string matched = r.verdict ? r.verdict->matched_tlsa : "";
        last_remote = host.name;
        if (r.host_failed) {
          last_status = r.status;
          last_reason = r.reason;
          spdlog::info("{}: {}", m.id, r.reason);
          RecordHost(m, host, facts, ip, verdict, r.reason, r.status, matched, out);
          continue;
        }
        const std::string relay = fmt::format("{}[{}]:{}", host.name, ip, host.port);
        for (size_t i = 0; i < m.recipients.size(); ++i) {
          const auto& rc = r.recipients[i];
          queue::RecipientUpdate u{
              m.recipients[i].index, rc.state, std::nullopt, rc.status, rc.reply, host.name};
          u.remote_dsn = r.remote_dsn;
          out.attempts.push_back(Attempt(m.recipients[i].index, host, facts, ip, verdict, matched,
                                         rc.reply, rc.status));
          LogDisposition(m.id, m.recipients[i].address, relay, u);
          out.updates.push_back(std::move(u));
        }
        co_return out;
      }
    }
    // No host took the mail: deferred with what the last one said (4.7.5 for TLS and DANE,
    // 4.4.x for DNS and connections).
    finish(RecipientState::kDeferred, last_status, last_reason, "");
    co_return out;
  }

  static queue::AttemptRecord Attempt(int index, const NextHop& host, const HostDnsFacts& facts,
                                      const std::string& ip, const std::string& verdict,
                                      const std::string& matched, const std::string& reply,
                                      const std::string& status) {
    queue::AttemptRecord a;
    a.recipient_index = index;
    a.time = queue::Clock::now();
    a.mx_host = host.name;
    a.ip = ip;
    a.dnssec_mx = std::string(dns::ToString(facts.mx));
    a.dnssec_address = facts.address_failed ? "failed" : std::string(dns::ToString(facts.address));
    a.dnssec_tlsa = DescribeTlsa(facts.tlsa);
    a.tls_verdict = verdict;
    a.tlsa_record = matched;
    a.reply = reply;
    a.status = status;
    return a;
  }

  static void RecordHost(const queue::MessageInfo& m, const NextHop& host,
                         const HostDnsFacts& facts, const std::string& ip,
                         const std::string& verdict, const std::string& reason,
                         const std::string& status, const std::string& matched,
                         DomainOutcome& out) {
    for (const auto& r : m.recipients) {
      out.attempts.push_back(Attempt(r.index, host, facts, ip, verdict.empty() ? "none" : verdict,
                                     matched, reason, status));
    }
  }
};

DeliveryAgent::DeliveryAgent(asio::io_context& io, DeliveryOptions options, std::string helo_name,
                             dns::Resolver& resolver, queue::Committer& committer,
                             queue::QueueIdGenerator& ids)
    : impl_(std::make_shared<Impl>(io, std::move(options), std::move(helo_name), resolver,
                                   committer, ids)) {}

DeliveryAgent::~DeliveryAgent() { Stop(); }

tl::expected<void, std::string> DeliveryAgent::Start() {
  auto ctx = tls::MakeClientContext();
  if (!ctx) return tl::unexpected(ctx.error());
  impl_->tls_context = std::move(*ctx);
  asio::co_spawn(impl_->io, impl_->Run(), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::critical("BUG: the delivery scheduler ended with an exception: {}", ex.what());
    }
  });
  return {};
}

void DeliveryAgent::Wake() { impl_->Wake(); }

void DeliveryAgent::Reload(DeliveryOptions options) {
  // Safe between awaits: the agent runs on this thread, and nothing holds a reference into the
  // old options across a co_await (FindNextHops reads routes before its first one).
  impl_->options = std::move(options);
  impl_->Wake();
}

void DeliveryAgent::Stop() {
  impl_->stopping = true;
  impl_->connections.Sweep(impl_->io.get_executor(), /*all=*/true);
  impl_->Wake();
}

}  // namespace danerelay::relay
