#include "relay/delivery/delivery_agent.hpp"

#include <fmt/chrono.h>
#include <spdlog/spdlog.h>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <algorithm>
#include <deque>
#include <map>
#include <random>

#include "queue/retry.hpp"
#include "queue/upkeep.hpp"
#include "relay/daemon/logging.hpp"
#include "relay/daemon/metrics.hpp"
#include "relay/delivery/dead_destinations.hpp"
#include "relay/delivery/destination_slots.hpp"
#include "relay/delivery/domain_delivery.hpp"
#include "relay/delivery/pass_notices.hpp"
#include "relay/delivery/rate_gate.hpp"
#include "relay/delivery/scheduler.hpp"
#include "relay/delivery/shaping_status.hpp"
#include "relay/delivery/sites.hpp"
#include "relay/delivery/suspension_watch.hpp"
#include "relay/health/resolver_health.hpp"
#include "relay/health/status_file.hpp"
#include "relay/io/connection.hpp"
#include "relay/io/periodic_task.hpp"
#include "relay/io/store_bridge.hpp"
#include "relay/policy/sts_policies.hpp"
#include "relay/tlsrpt/tls_reporter.hpp"

namespace danerelay::relay {
namespace {

// The queue manager's lines are qmgr's (relay/daemon/logging.hpp).
spdlog::logger& Qmgr() { return Log(Service::kQmgr); }

void RewordForTest(std::vector<queue::RecipientUpdate>& updates,
                   std::vector<queue::AttemptRecord>& attempts) {
  if (!RewordTexts()) return;
  for (auto& u : updates) u.reply = Reworded(u.reply);
  for (auto& a : attempts) a.reply = Reworded(a.reply);
}

}  // namespace

using queue::RecipientState;

struct DeliveryAgent::Impl : std::enable_shared_from_this<Impl> {
  asio::io_context& io;
  DeliveryOptions options;
  std::string helo_name;
  dns::Lookup& resolver;
  queue::Committer& committer;
  queue::QueueIdGenerator& ids;
  std::shared_ptr<asio::ssl::context> tls_context;
  const ResolverHealth* health = nullptr;
  const dkim::SignerSlot* dkim = nullptr;  // signs notices (on the writer thread)
  std::unique_ptr<StsPolicies> sts;        // MTA-STS policies, fetched and cached
  // The loop sleeps on `kick` (never due: only cancelled, by Kick) while `alarm` stands at the
  // next time it must look anyway. Re-arming a timer is a system call, so the alarm moves only
  // when it must ring earlier, and a kick after every delivery costs none.
  asio::steady_timer kick;
  asio::steady_timer alarm;
  std::chrono::steady_clock::time_point alarm_at = std::chrono::steady_clock::time_point::max();
  std::size_t active = 0;  // messages in delivery (or waiting for their outcome's commit)
  // Of those, outcomes waiting to try their write again (WriteBounded): they hold no slot.
  std::size_t unrecorded = 0;
  Scheduler scheduler;
  SuspensionWatch suspensions;  // `queue suspend` and [[shaping.on_reply]]: logged, counted
  std::optional<ReplyMatcher> on_reply;  // [[shaping.on_reply]], then the shipped rules
  DeadDestinations dead;                 // connection failures in a row, per domain
  ExpiryClock expiry_clock;
  ConnectionCache connections{std::chrono::seconds(2)};  // Postfix: 2 s idle time limit
  DestinationSlots slots;
  RateGate rates;             // [shaping] message_rate
  RateGate connection_rates;  // [shaping] connection_rate, by site
  // Deliveries under way admitted on an idle cached connection of their site instead of a
  // connection_rate token (Admit).
  std::map<std::string, std::size_t> reusing;
  // Of `active`, deliveries waiting for a connection of their site (AcquireSlot): they hold no
  // place under max_parallel, so one slow site does not hold every other back.
  std::size_t slot_waiting = 0;
  // Mail parked because its site was at its connections (and max_parallel deliveries already
  // waited), in arrival order: one is woken each time a connection ends.
  struct ParkedForSlot {
    std::string id;
    std::vector<int> indices;
    queue::TimePoint until;
  };
  std::map<std::string, std::deque<ParkedForSlot>> slot_parked;
  // shaping.status (shaping_status.hpp): looked at every kStatusEvery, written when it changed,
  // and at least every kStatusRenew (queue stats tells a stale one).
  static constexpr auto kStatusEvery = std::chrono::seconds(2);
  static constexpr auto kStatusRenew = std::chrono::seconds(30);
  std::filesystem::path status_file;
  std::string status_written;  // without its time
  std::chrono::steady_clock::time_point status_written_at;
  PeriodicTask status_task{io, "the shaping status"};
  bool stopping = false;
  std::mt19937 rng{std::random_device{}()};

  Impl(asio::io_context& i, DeliveryOptions o, std::string h, dns::Lookup& r, queue::Committer& c,
       queue::QueueIdGenerator& g)
      : io(i),
        options(std::move(o)),
        helo_name(std::move(h)),
        resolver(r),
        committer(c),
        ids(g),
        kick(i),
        alarm(i),
        scheduler(options.max_parallel),
        slots(i) {
    MakeReplyMatcher();
    ConfigureShaping();
  }

  // config/ has checked the operator's patterns; a failure here keeps the shipped rules.
  void MakeReplyMatcher() {
    auto m = ReplyMatcher::Make(options.on_reply);
    if (!m) {
      Qmgr().error("[[shaping.on_reply]]: {}; only the shipped rules apply", m.error());
      m = ReplyMatcher::Make({});
    }
    on_reply = std::move(*m);
  }

  asio::awaitable<void> Run() {
    auto self = shared_from_this();
    // Recipients left "attempting" by a crash become due again; then what is due, and when,
    // is known in memory from the store's index instead of being polled for.
    const auto start = [](queue::Store& s)
        -> tl::expected<std::pair<int, std::optional<queue::TimePoint>>, queue::StoreError> {
      auto released = s.ReleaseAttempting(queue::Clock::now());
      if (!released) return tl::unexpected(released.error());
      auto next = s.NextDue();
      if (!next) return tl::unexpected(next.error());
      return std::pair(*released, *next);
    };
    auto started = co_await OnStore(committer, start);
    if (!started) {
      Qmgr().error("queue: {}", started.error().message);
      scheduler.Due(queue::Clock::now());
    } else {
      if (started->first > 0) {
        Qmgr().info("{} recipients were in delivery when the daemon stopped; retrying them",
                    started->first);
      }
      scheduler.Known(started->second);
    }
    auto last_poll = std::chrono::steady_clock::time_point{};
    auto last_expiry = last_poll;
    auto last_purge = std::chrono::steady_clock::now();
    while (!stopping) {
      const auto steady_now = std::chrono::steady_clock::now();
      if (steady_now - last_poll >= Scheduler::kTick) {
        // Every tick: the command line's changes; every second expiry; every minute purge.
        last_poll = steady_now;
        const bool expire = steady_now - last_expiry >= std::chrono::seconds(1);
        if (expire) last_expiry = steady_now;
        const bool purge = steady_now - last_purge >= std::chrono::minutes(1);
        if (purge) last_purge = steady_now;
        // A purge that found a full batch goes on at the next tick, a batch at a time.
        if (co_await Upkeep(expire, purge)) last_purge = {};
        connections.Sweep(io.get_executor());
        continue;
      }
      const auto now = queue::Clock::now();
      if (!options.enabled) {
        // Turned off by a reload: nothing new is claimed (mail still ages and expires); the
        // deliveries under way finish.
        SetAlarm(steady_now + Scheduler::kTick);
      } else {
        if (const size_t n = scheduler.ToClaim(now, active - unrecorded - slot_waiting); n > 0) {
          co_await Claim(n);
          continue;
        }
        SetAlarm(steady_now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                  scheduler.WakeAt(now) - now));
      }
      kick.expires_at(std::chrono::steady_clock::time_point::max());
      co_await kick.async_wait(kUseTuple);
    }
  }

  void Kick() { kick.cancel(); }  // something changed: look again now

  void SetAlarm(std::chrono::steady_clock::time_point at) {
    if (at >= alarm_at) return;  // it rings early enough; the loop looks again then
    alarm_at = at;
    alarm.expires_at(at);  // a later alarm's handler sees operation_aborted
    alarm.async_wait([self = weak_from_this()](std::error_code ec) {
      auto impl = self.lock();
      if (ec || !impl) return;
      impl->alarm_at = std::chrono::steady_clock::time_point::max();
      impl->Kick();
    });
  }
  void Wake() {  // mail was queued
    scheduler.Due(queue::Clock::now());
    Kick();
  }

  // The time expiry is judged by (scheduler.hpp: a clock stepped forward expires nothing).
  queue::TimePoint JudgedNow() {
    const auto r = expiry_clock.Read(queue::Clock::now(), std::chrono::steady_clock::now());
    if (r.jumped > std::chrono::seconds(60)) {
      Qmgr().warn(
          "the system clock jumped {}s ahead of real time; mail ages at real time, "
          "the jump expires nothing",
          r.jumped.count());
    }
    return r.now;
  }

  void ValidationWorksAgain() {
    if (stopping) return;
    asio::co_spawn(io, MakeValidationDeferralsDue(),
                   LogIfBug(Service::kQmgr, "making deferred mail due"));
  }

  // Makes the recipients deferred because validation did not work due now. The store keeps
  // their cause, so this finds them also after a restart, and costs one pass over deferred ones.
  asio::awaitable<void> MakeValidationDeferralsDue() {
    auto self = shared_from_this();
    struct Found {
      int count = 0;
      std::optional<queue::TimePoint> next_due;
    };
    auto found = std::make_shared<Found>();
    const queue::Store::WriteJob job =
        [found](queue::Store& s) -> tl::expected<void, queue::StoreError> {
      auto n = s.MakeDeferredDue(queue::Cause::kResolverNotValidating, queue::Clock::now());
      if (!n) return tl::unexpected(n.error());
      auto next = s.NextDue();
      if (!next) return tl::unexpected(next.error());
      found->count = *n;
      found->next_due = *next;
      return {};
    };
    auto r = co_await OnStoreWrite(committer, job);
    if (!r) {
      Qmgr().error("queue: making mail deferred for DNSSEC validation due: {}", r.error().message);
      co_return;
    }
    if (found->count > 0) {
      Qmgr().info("{} recipients deferred because DNSSEC validation was not working are due now",
                  found->count);
    }
    scheduler.Known(found->next_due);
    Kick();
  }

  // Claims up to `n` due messages in the next group commit and starts their delivery.
  asio::awaitable<void> Claim(size_t n) {
    struct Claimed {
      std::vector<queue::MessageInfo> messages;
      std::optional<queue::TimePoint> next_due;
    };
    auto claimed = std::make_shared<Claimed>();
    const queue::Store::WriteJob job =
        [claimed, n](queue::Store& s) -> tl::expected<void, queue::StoreError> {
      auto due = s.ClaimDue(queue::Clock::now(), n);
      if (!due) return tl::unexpected(due.error());
      auto next = s.NextDue();
      if (!next) return tl::unexpected(next.error());
      claimed->messages = std::move(*due);
      claimed->next_due = *next;
      return {};
    };
    auto r = co_await OnStoreWrite(committer, job);
    if (!r) {
      Qmgr().error("queue: claiming due mail: {}", r.error().message);
      scheduler.Known(queue::Clock::now() + Scheduler::kTick);  // try again at the next tick
      co_return;
    }
    scheduler.Known(claimed->next_due);
    auto self = shared_from_this();
    for (auto& m : claimed->messages) {
      ++active;
      asio::co_spawn(io, DeliverMessage(std::move(m)),
                     [self, bug = LogIfBug(Service::kQmgr, "delivery")](std::exception_ptr e) {
                       --self->active;
                       self->Kick();
                       bug(e);
                     });
    }
  }

  // "ID: held by root (queue hold)": what the command line did, in the daemon's log (the
  // command line may run as another user, without access to it; Postfix's postsuper logs too).
  static void LogOperatorAction(const queue::Store::OperatorEntry& e) {
    const std::string_view a = e.action;
    const std::string_view done = a == "delete"    ? "removed"
                                  : a == "hold"    ? "held"
                                  : a == "release" ? "released"
                                  : a == "bounce"  ? "bounced"
                                                   : a;
    Qmgr().info("{}: {} by {} (queue {})", e.message_id, done, e.user, e.action);
    if (!e.notice_id.empty()) {
      Log(Service::kBounce)
          .info("{}: sender non-delivery notification: {}", e.message_id, e.notice_id);
    }
  }

  // On the writer thread (queue/upkeep.hpp): the command line's changes, expiry of mail nobody
  // is attempting, the purge of completed mail.
  // Returns whether the purge left more behind (it removed a full batch).
  asio::awaitable<bool> Upkeep(bool expire, bool purge) {
    queue::UpkeepRequest req;
    req.expire = expire;
    req.now = JudgedNow();
    req.max_lifetime = options.retry.max_lifetime;
    // TLS-RPT reports a whole UTC day after it ended from the attempts of completed mail: keep
    // that mail two days at least.
    const auto keep = options.tls_rpt.enabled
                          ? std::max<std::chrono::seconds>(options.keep_completed, kTlsRptKeep)
                          : options.keep_completed;
    if (purge) req.purge_before = queue::Clock::now() - keep;
    req.notice = MakeNoticeOptions(helo_name, dkim);
    req.ids = &ids;
    const std::uint64_t read = suspensions.Started();
    const auto run = [req](queue::Store& s) { return queue::RunUpkeep(s, req); };
    const queue::UpkeepResult r = co_await OnStore(committer, run);
    if (r.error) Qmgr().error("queue: {}", r.error->message);
    // Counted as the expiries at the end of a delivery pass are: which of the two returns a
    // recipient is a matter of timing, not of meaning.
    if (r.expired.recipients > 0) {
      Metrics::Get().Add("danerelay_deliveries_total", "outcome=\"expired\"",
                         static_cast<std::uint64_t>(r.expired.recipients));
    }
    for (const auto& f : r.expired.finished) {
      // Postfix's qmgr words, then the notice linked to the message as Postfix's bounce does.
      Qmgr().info("{}: from=<{}>, status=expired, returned to sender (after {}s in the queue)",
                  f.message_id, f.sender, options.retry.max_lifetime.count());
      if (!f.notice_id.empty()) {
        Log(Service::kBounce)
            .info("{}: sender non-delivery notification: {}", f.message_id, f.notice_id);
      }
    }
    for (const auto& e : r.operator_log) LogOperatorAction(e);
    suspensions.Note(r.suspensions, queue::Clock::now(), read);
    if (r.purged > 0) Qmgr().info("queue: purged {} completed messages", r.purged);
    if (r.returned.pages > 0) {
      Qmgr().info("queue: gave {} MiB of free space in the queue file back to the file system",
                  r.returned.bytes >> 20);
    }
    if (r.reserve_made) {
      Qmgr().info("queue: the disk has room again: {} MiB kept in reserve for the operator",
                  queue::Store::kReserveBytes >> 20);
    }
    if (r.reread) scheduler.Known(r.next_due);
    // A full batch, or a full step of free pages: go on at the next tick.
    co_return r.purged >= queue::UpkeepRequest::kPurgeBatch ||
        r.returned.pages >= queue::UpkeepRequest::kReturnPages;
  }

  asio::awaitable<void> DeliverMessage(queue::MessageInfo m) {
    auto self = shared_from_this();
    const std::string id = m.id;
    const auto read = [id](queue::Store& s) { return s.GetContent(id); };
    auto content = co_await OnStore(committer, read);
    std::vector<queue::RecipientUpdate> updates;
    std::vector<queue::AttemptRecord> attempts;
    // Recipients waiting for a suspension or their turn under a message_rate: no attempt.
    struct Waiting {
      std::vector<int> indices;
      std::optional<queue::TimePoint> until;
      std::string site;
      bool for_connection = false;  // woken when a connection to the site ends
    };
    std::vector<Waiting> waiting;
    std::shared_ptr<const std::string> body;
    if (!content || !*content) {
      Qmgr().error("{}: cannot read the message: {}", id,
                   content ? "gone" : content.error().message);
      for (const auto& r : m.recipients) {
        updates.push_back(
            {r.index, RecipientState::kDeferred, std::nullopt, "4.3.0", "queue read error", ""});
      }
    } else if (const auto hops = queue::CountHeaderFields(**content, "Received");
               hops > options.max_hops) {
      // RFC 5321 §6.3: a mail loop. Returned to the sender, never relayed again.
      body = std::make_shared<const std::string>(std::move(**content));
      const std::string why = fmt::format(
          "mail forwarding loop: too many hops ({} Received header fields, [limits] max_hops = {})",
          hops, options.max_hops);
      Qmgr().warn("{}: {}; returned to sender", id, why);
      for (const auto& r : m.recipients) {
        updates.push_back({r.index, RecipientState::kFailed, std::nullopt, "5.4.6", why, ""});
        updates.back().cause = queue::Cause::kLoop;
        Log(Service::kSmtp)
            .info("{}: to=<{}>, relay=none, delay={:.0f}, dsn=5.4.6, status=bounced ({})", id,
                  r.address, std::chrono::duration<double>(queue::Clock::now() - m.arrival).count(),
                  why);
      }
      Metrics::Get().Add("danerelay_deliveries_total", "outcome=\"bounced\"");
    } else {
      body = std::make_shared<const std::string>(std::move(**content));
      // Recipients grouped by domain: one transaction per domain (and MX host).
      std::map<std::string, std::vector<queue::StoredRecipient>> by_domain;
      for (const auto& r : m.recipients) by_domain[queue::RecipientDomain(r.address)].push_back(r);
      for (auto& [domain, rcpts] : by_domain) {
        queue::MessageInfo part = m;
        part.recipients = rcpts;
        std::vector<int> indices;
        for (const auto& r : rcpts) indices.push_back(r.index);
        // Suspended since the claim (the operator): no lookup, no connection; the recipients
        // wait for its end without an attempt.
        if (const auto until = suspensions.Until("domain", domain, queue::Clock::now())) {
          Qmgr().info("{}: {} recipients for {} wait: the domain is suspended until {}", id,
                      rcpts.size(), domain, Utc(*until));
          waiting.push_back({std::move(indices), SuspendedUntil(*until), "", false});
          continue;
        }
        DomainDeliveryContext ctx{options,
                                  helo_name,
                                  resolver,
                                  tls_context,
                                  &connections,
                                  rng,
                                  health,
                                  options.mta_sts.enabled ? sts.get() : nullptr,
                                  &*on_reply,
                                  [this, id, domain](const std::string& site) { return Admit(id, domain, site); }};
        DomainOutcome out = co_await DeliverDomain(ctx, part, *body, domain);
        if (out.admission && out.admission->holds_slot) ReleaseSlot(out.site);
        if (out.admission && out.admission->reuses && --reusing[out.site] == 0) {
          reusing.erase(out.site);
        }
        if (out.admission && !out.admission->go) {
          Qmgr().info("{}: {} recipients for {} wait: {}", id, rcpts.size(), domain,
                      out.admission->why);
          waiting.push_back(
              {std::move(indices), out.admission->until, out.site, out.admission->for_connection});
          continue;
        }
        if (out.throttle && out.throttle->rule.connections > 0) {
          LowerForReply(out.site, *out.throttle);
        } else if (out.throttle) {
          co_await SuspendForReply(out.site, *out.throttle);
        }
        if (!out.site.empty()) co_await NoteReach(DeadKeyOf(domain, out.site), out);
        updates.insert(updates.end(), out.updates.begin(), out.updates.end());
        attempts.insert(attempts.end(), out.attempts.begin(), out.attempts.end());
      }
    }
    co_await RecordOutcome(std::make_shared<const queue::MessageInfo>(std::move(m)), body,
                           std::move(updates), std::move(attempts));
    for (auto& w : waiting) {
      const bool parked = co_await Park(id, w.indices, w.until, w.site);
      if (!parked || !w.for_connection) continue;
      slot_parked[w.site].push_back({id, std::move(w.indices), *w.until});
      if (slots.Free(w.site)) WakeForSlot(w.site);  // a connection ended meanwhile
    }
  }

  asio::awaitable<std::optional<std::chrono::steady_clock::duration>> WriteStatus() {
    std::map<std::string, std::size_t> parked;
    for (const auto& [site, q] : slot_parked) parked[site] = q.size();
    nlohmann::json j = ShapingStatus(slots, rates, connection_rates, parked, queue::Clock::now());
    nlohmann::json what = j;
    what.erase("written");
    what.erase("written_us");
    std::string text = what.dump();
    const auto now = std::chrono::steady_clock::now();
    if (text != status_written || now - status_written_at >= kStatusRenew) {
      WriteStatusFile(status_file, j, "shaping status");
      status_written = std::move(text);
      status_written_at = now;
    }
    co_return kStatusEvery;
  }

  // How long mail parked for a connection waits at most when no connection ends meanwhile
  // (then it is claimed again, also after a restart, which forgets slot_parked).
  static constexpr auto kParkedForSlot = std::chrono::minutes(10);

  // A connection to `site` ended and nobody waits here: the first mail parked for one is due.
  void WakeForSlot(const std::string& site) {
    const auto it = slot_parked.find(site);
    if (it == slot_parked.end()) return;
    ParkedForSlot p = std::move(it->second.front());
    it->second.pop_front();
    if (it->second.empty()) slot_parked.erase(it);
    asio::co_spawn(io, WakeParked(site, std::move(p)),
                   LogIfBug(Service::kQmgr, "waking mail parked for a connection"));
  }

  asio::awaitable<void> WakeParked(std::string site, ParkedForSlot p) {
    auto self = shared_from_this();
    auto woken = std::make_shared<int>(0);
    const queue::Store::WriteJob job =
        [p, woken](queue::Store& s) -> tl::expected<void, queue::StoreError> {
      auto r = s.WakeParked(p.id, p.indices, p.until, queue::Clock::now());
      if (!r) return tl::unexpected(r.error());
      *woken = *r;
      return {};
    };
    if (auto r = co_await OnStoreWrite(committer, job); !r) {
      Qmgr().error("{}: waking it for a connection to site {} failed ({}); it waits until {}", p.id,
                   site, r.error().message, Utc(p.until));
      co_return;
    }
    if (*woken == 0) {  // deleted, flushed, or due already: the next one
      if (slots.Free(site)) WakeForSlot(site);
      co_return;
    }
    scheduler.Due(queue::Clock::now());
    Kick();
  }

  // Whether a delivery for `domain` may connect to `site` now (traffic shaping, in this
  // order): the site's suspension, its connection_rate (unless an idle cached connection to it is
  // kept; a delivery that goes on to a further host connects without asking again), the
  // message_rate (the domain's own, else the site's; over a rate, the mail is booked a turn and
  // waits for it), a slot under the site's connections (in arrival order), and, for a dead
  // site whose suspension ended, the probe.
  asio::awaitable<Admission> Admit(std::string id, std::string domain, std::string site) {
    auto self = shared_from_this();
    if (auto held = Suspended(domain, site)) co_return *held;
    // The rates know a parked message by this when it is back for its turn.
    const std::string holder = id + " " + domain;
    const auto now = queue::Clock::now();
    // An idle cached connection not counted on by another delivery yet: none is opened.
    const auto counted = reusing.find(site);
    const bool opens =
        connections.IdleCount(site) <= (counted == reusing.end() ? 0 : counted->second);
    if (opens) {
      if (const auto turn = connection_rates.Take(site, now, holder)) {
        Metrics::Get().Add("danerelay_shaping_waits_total", "reason=\"connection_rate\"");
        co_return Admission{false, false, *turn,
                            fmt::format("wait for the connection rate of site {} ({}) until {}",
                                        site, connection_rates.RateOf(site), Utc(*turn))};
      }
    }
    const std::string rate_key = RateKey(domain, site);
    // Let through by a rate but held back after it: the mail keeps what it was given, and
    // goes on it when it is back.
    const auto give_back = [&](bool message_rate_too) {
      if (opens) connection_rates.Hold(site, holder, now);
      if (message_rate_too) rates.Hold(rate_key, holder, now);
    };
    if (const auto turn = rates.Take(rate_key, now, holder)) {
      give_back(false);
      Metrics::Get().Add("danerelay_shaping_waits_total", "reason=\"message_rate\"");
      co_return Admission{false, false, *turn,
                          fmt::format("wait for the message rate of {} ({}) until {}", rate_key,
                                      rates.RateOf(rate_key), Utc(*turn))};
    }
    if (!slots.Free(site)) {
      // At its connections: up to max_parallel deliveries wait here, in arrival order, without
      // a place under max_parallel; more are parked and woken one by one as connections end.
      if (slot_waiting >= options.max_parallel) {
        give_back(true);
        Metrics::Get().Add("danerelay_shaping_waits_total", "reason=\"connections\"");
        const auto until = queue::Clock::now() + kParkedForSlot;
        co_return Admission{false, false, until,
                            fmt::format("site {} has its {} connections; waits for one to end",
                                        site, slots.LimitOf(site)),
                            true};
      }
      ++slot_waiting;
      Kick();  // a place under max_parallel is free
      co_await AcquireSlot(site);
      --slot_waiting;
    } else {
      co_await AcquireSlot(site);
    }
    // Suspended while it waited (a throttling reply to another delivery, the operator).
    if (auto held = Suspended(domain, site)) {
      give_back(true);
      ReleaseSlot(site);
      co_return *held;
    }
    if (!opens) ++reusing[site];
    // A dead destination whose suspension ended: this delivery probes it, the rest waits.
    if (const DeadKey key = DeadKeyOf(domain, site); dead.Dead(key.Text(), options.dead_after)) {
      co_await Suspend(key.kind, key.name, "dead", options.dead_for,
                       fmt::format("probing with {}: {} connection failures in a row before", id,
                                   options.dead_after));
    }
    co_return Admission{true, true, std::nullopt, "", false, !opens};
  }

  std::optional<Admission> Suspended(const std::string& domain, const std::string& site) {
    const auto now = queue::Clock::now();
    if (const auto until = suspensions.Until("site", site, now)) {
      return Admission{false, false, SuspendedUntil(*until),
                       fmt::format("site {} is suspended until {}", site, Utc(*until))};
    }
    if (const auto until = suspensions.Until("domain", domain, now)) {
      return Admission{false, false, SuspendedUntil(*until),
                       fmt::format("the domain is suspended until {}", Utc(*until))};
    }
    return std::nullopt;
  }

  // Mail that waits for a suspension the agent knows of is not due before its end as the
  // table says it (Store::Park), nor before a few seconds have passed: the agent's knowledge
  // may be ahead of the table (its own suspension, not written yet) or behind it (resumed
  // meanwhile: the resume has woken what was parked before it, not what is parked after).
  static constexpr auto kSuspensionRecheck = std::chrono::seconds(5);
  static queue::TimePoint SuspendedUntil(queue::TimePoint until) {
    return std::min(until, queue::Clock::now() + kSuspensionRecheck);
  }

  // Connections per site, and the gauge of deliveries under way to each.
  asio::awaitable<void> AcquireSlot(std::string site) {
    auto self = shared_from_this();
    co_await slots.Acquire(site);
    SiteGauge(site);
  }
  void ReleaseSlot(const std::string& site) {
    slots.Release(site);
    SiteGauge(site);
    if (slots.Free(site)) WakeForSlot(site);
  }
  // danerelay_site_deliveries{site}: the site's slots in use.
  void SiteGauge(const std::string& site) {
    const std::uint32_t n = slots.InUseOf(site);
    const std::string labels = fmt::format("site=\"{}\"", LabelValue(site));
    if (n > 0) {
      Metrics::Get().SetGauge("danerelay_site_deliveries", labels, n);
    } else {
      Metrics::Get().EraseGauge("danerelay_site_deliveries", labels);
    }
  }

  // Whose message_rate counts: the domain's own ([shaping.domain]), else its site's.
  std::string RateKey(const std::string& domain, const std::string& site) const {
    return options.message_rate_by_domain.contains(domain) ? "domain " + domain : "site " + site;
  }

  // The sites' connections, and the rates by the keys RateKey gives.
  void ConfigureShaping() {
    std::map<std::string, std::uint32_t> connections_of;
    std::map<std::string, QuotaLimit> rate_of;
    std::map<std::string, QuotaLimit> opening_of;  // connection_rate
    for (const auto& [domain, rate] : options.message_rate_by_domain) {
      rate_of["domain " + domain] = rate;
    }
    for (const auto& [site, shaping] : options.site_shaping) {
      if (shaping.connections) connections_of[site] = *shaping.connections;
      if (shaping.message_rate) rate_of["site " + site] = *shaping.message_rate;
      if (shaping.connection_rate) opening_of[site] = *shaping.connection_rate;
    }
    slots.SetLimits(options.max_per_destination, std::move(connections_of));
    rates.Configure(options.message_rate, std::move(rate_of));
    connection_rates.Configure(options.connection_rate, std::move(opening_of));
  }

  // A reply matched a suspending [[shaping.on_reply]] rule: the site is suspended in the
  // operator's table (queue stats shows it, the claim enforces it, resume ends it), marked as
  // the daemon's. A suspension in force that lasts as long already stays as it is.
  // A reply matched a [[shaping.on_reply]] rule with connections: the site gets at most that
  // many for a while (in memory; queue stats shows it).
  void LowerForReply(const std::string& site, const DomainOutcome::Throttle& t) {
    slots.Lower(site, t.rule.connections, t.rule.lower_for);
    Metrics::Get().Add("danerelay_connection_limit_lowered_total", "");
    Qmgr().warn(
        "site {}: at most {} connections for {}s: {} said: {} ([[shaping.on_reply]] match "
        "\"{}\")",
        site, t.rule.connections, t.rule.lower_for.count(), t.host, queue::Printable(t.reply, 300),
        queue::Printable(t.rule.match, 200));
  }

  asio::awaitable<void> SuspendForReply(std::string site, DomainOutcome::Throttle t) {
    auto self = shared_from_this();
    co_await Suspend(
        "site", site, "on_reply", t.rule.suspend,
        fmt::format("{} said: {} ([[shaping.on_reply]] match \"{}\")", t.host,
                    queue::Printable(t.reply, 300), queue::Printable(t.rule.match, 200)));
  }

  asio::awaitable<void> Suspend(std::string kind, std::string name, std::string origin,
                                std::chrono::seconds length, std::string reason) {
    auto self = shared_from_this();
    queue::Store::Suspension s;
    s.kind = kind;
    s.name = name;
    s.created = queue::Clock::now();
    s.until = s.created + length;
    s.user = "danerelayd";
    s.origin = origin;
    s.reason = std::move(reason);
    if (!suspensions.Decide(s, s.created)) co_return;
    Metrics::Get().Add("danerelay_suspensions_total", fmt::format("origin=\"{}\"", origin));
    Qmgr().warn("{} {}: suspended for {}s: {}", kind, name, length.count(), s.reason);
    const queue::Store::WriteJob job = [s](queue::Store& st) { return st.Suspend(s); };
    if (auto r = co_await OnStoreWrite(committer, job); !r) {
      Qmgr().error("{} {}: recording the suspension failed ({}); it holds until a restart", kind,
                   name, r.error().message);
      co_return;
    }
    suspensions.Landed(kind, name);
  }

  // What a dead destination is: a site; but for a provider's site (google), the recipient
  // domain: any domain can name MX hosts under a provider's suffixes that do not answer, and
  // must not get the provider's site suspended for every other domain.
  struct DeadKey {
    std::string kind, name;
    std::string Text() const { return kind + " " + name; }
  };
  DeadKey DeadKeyOf(const std::string& domain, const std::string& site) const {
    if (IsProviderSite(site, options.providers)) return {"domain", domain};
    return {"site", site};
  }

  // Dead destinations (dead_destinations.hpp), after a pass to `key`.
  asio::awaitable<void> NoteReach(DeadKey key, const DomainOutcome& out) {
    auto self = shared_from_this();
    const std::string why = out.last_unreachable;
    switch (dead.Note(key.Text(), out.unreachable, out.reached, options.dead_after)) {
      case DeadDestinations::Verdict::kDead:
        co_await Suspend(key.kind, key.name, "dead", options.dead_for,
                         fmt::format("{} connection failures in a row; the last: {}",
                                     options.dead_after, queue::Printable(why, 300)));
        break;
      case DeadDestinations::Verdict::kAlive:
        co_await EndDead(std::move(key));
        break;
      case DeadDestinations::Verdict::kNothing:
        break;
    }
  }

  // A server of a dead site (or domain) answered (the probe): its "dead" suspension ends, the
  // rest of its mail is due now. The operator's or an on_reply suspension stays.
  asio::awaitable<void> EndDead(DeadKey key) {
    auto self = shared_from_this();
    const queue::Store::WriteJob job =
        [key](queue::Store& s) -> tl::expected<void, queue::StoreError> {
      auto r = s.Resume(key.kind, key.name, queue::Clock::now(), "dead");
      if (!r) return tl::unexpected(r.error());
      return {};
    };
    if (auto r = co_await OnStoreWrite(committer, job); !r) {
      Qmgr().error("{}: ending its suspension failed ({})", key.Text(), r.error().message);
      co_return;
    }
    suspensions.Forget(key.kind, key.name);
    Qmgr().info("{}: answers again; no longer a dead destination", key.Text());
    scheduler.Due(queue::Clock::now());
    Kick();
  }

  // Recipients that waited instead of an attempt (a suspension, a turn under a message_rate):
  // due at `until` (none: the suspension in the table decides; a resume meanwhile makes them
  // due at once). `site`: where they go, when known.
  // Returns whether it was recorded.
  asio::awaitable<bool> Park(std::string id, std::vector<int> parked,
                             std::optional<queue::TimePoint> until, std::string site) {
    auto self = shared_from_this();
    auto next = std::make_shared<std::optional<queue::TimePoint>>();
    const queue::Store::WriteJob job =
        [id, parked, next, until, site](queue::Store& s) -> tl::expected<void, queue::StoreError> {
      auto r = s.Park(id, parked, queue::Clock::now(), until, site);
      if (!r) return tl::unexpected(r.error());
      *next = *r;
      return {};
    };
    // On failure they stay in delivery until a restart (ReleaseAttempting), as any outcome.
    if (!co_await WriteBounded(job, id, "the recipients waiting for a suspension")) co_return false;
    if (*next) scheduler.Due(**next);
    Kick();
    co_return true;
  }

  // Records a pass's outcome in the next group commit: the recipients' new states (when the
  // deferred come back and who has expired, queue/retry.hpp), the attempts, and the notices
  // they cause. Only recipients still "attempting" take their outcome: one the operator
  // deleted or bounced meanwhile keeps the operator's decision, and its outcome is dropped with
  // a log line. A failed write is tried again a bounded number of times (kOutcomeWrites), while
  // the message's delivery slot serves other mail; when it cannot land, the recipients' states
  // alone are written (RecordStatesOnly). Until one of them lands the recipients stay "in
  // delivery", so they are neither claimed again nor forgotten (relay/DESIGN.md).
  // What a recorded outcome did, for the logs and metrics after it landed.
  struct Recorded {
    queue::PassOutcome pass;
    struct Notice {
      std::string id;
      const char* what;
      const char* kind;
    };
    std::vector<Notice> notices;
    bool completed = false;    // every recipient final: the message left the queue
    bool gone = false;         // the message was deleted meanwhile
    std::vector<int> dropped;  // recipients no longer in delivery: their outcome not written
  };

  asio::awaitable<void> RecordOutcome(std::shared_ptr<const queue::MessageInfo> m,
                                      std::shared_ptr<const std::string> content,
                                      std::vector<queue::RecipientUpdate> updates,
                                      std::vector<queue::AttemptRecord> attempts) {
    auto self = shared_from_this();
    RewordForTest(updates, attempts);
    const auto now = queue::Clock::now();
    const auto judged = JudgedNow();
    const queue::RetryOptions retry = options.retry;
    const NoticeSettings settings{helo_name, options.postmaster, options.retry.max_lifetime, dkim};
    const auto seed = rng();
    auto recorded = std::make_shared<Recorded>();
    auto* id_source = &ids;
    const queue::Store::WriteJob job =
        [=](queue::Store& s) -> tl::expected<void, queue::StoreError> {
      recorded->gone = false;
      recorded->dropped.clear();
      auto live = s.AttemptingRecipients(m->id);
      if (!live) return tl::unexpected(live.error());
      if (!*live) {  // deleted: nothing left to record (its attempts went with it)
        recorded->gone = true;
        for (const auto& r : m->recipients) recorded->dropped.push_back(r.index);
        return {};
      }
      const auto in_delivery = [&](int index) {
        return std::find((*live)->begin(), (*live)->end(), index) != (*live)->end();
      };
      queue::MessageInfo mine = *m;  // the recipients this outcome still decides
      std::erase_if(mine.recipients, [&](const auto& r) {
        if (in_delivery(r.index)) return false;
        recorded->dropped.push_back(r.index);
        return true;
      });
      std::vector<queue::RecipientUpdate> mine_updates = updates;
      std::erase_if(mine_updates, [&](const auto& u) { return !in_delivery(u.index); });
      // An expired message takes its other pending recipients along, into the same bounce.
      std::vector<queue::StoredRecipient> rest;
      if (!mine.recipients.empty() && queue::Expired(m->arrival, judged, retry)) {
        auto full = s.GetMessage(m->id);
        if (!full) return tl::unexpected(full.error());
        for (const auto& r : *full ? (*full)->recipients : std::vector<queue::StoredRecipient>{}) {
          const bool pending = r.state == RecipientState::kQueued ||
                               r.state == RecipientState::kDeferred ||
                               r.state == RecipientState::kHeld;
          const bool in_pass = std::any_of(m->recipients.begin(), m->recipients.end(),
                                           [&](const auto& c) { return c.index == r.index; });
          if (pending && !in_pass) rest.push_back(r);
        }
      }
      std::mt19937 job_rng(seed);
      // Judged time decides expiry; the next attempts are moved by the wall clock's lead over
      // it (zero unless the clock jumped ahead), so they lie ahead on the wall clock too and a
      // jump does not turn backoff into immediate retries.
      queue::PassOutcome pass =
          queue::SchedulePass(mine, std::move(mine_updates), judged, retry, job_rng, rest);
      for (auto& u : pass.updates) {
        if (u.next_attempt) *u.next_attempt += now - judged;
      }
      std::vector<PassNotice> notices;
      if (content && !mine.recipients.empty()) {
        notices = PassNotices(mine, *content, pass, now, settings, *id_source);
      }
      std::vector<queue::NewMessage> messages;
      for (auto& n : notices) messages.push_back(std::move(n.message));
      // The attempts are history, kept for `queue show` even when the operator decided.
      if (auto r =
              s.RecordDelivery(m->id, pass.updates, attempts, messages, now, &recorded->completed);
          !r) {
        return r;
      }
      recorded->pass = std::move(pass);
      recorded->notices.clear();
      for (size_t i = 0; i < notices.size(); ++i) {
        recorded->notices.push_back({messages[i].id, notices[i].what, notices[i].kind});
      }
      return {};
    };
    if (auto r = co_await WriteBounded(job, m->id, "the delivery outcome"); !r) {
      co_await RecordStatesOnly(m, updates, r.error());
      co_return;
    }
    Announce(*m, updates, *recorded);
  }

  // Logs and counts what a recorded outcome did: outcomes the operator overrode, notices,
  // expiries; and wakes what it made due.
  void Announce(const queue::MessageInfo& msg, const std::vector<queue::RecipientUpdate>& updates,
                const Recorded& rec) {
    const queue::MessageInfo* m = &msg;
    const Recorded* recorded = &rec;
    for (int index : recorded->dropped) {
      const auto u = std::find_if(updates.begin(), updates.end(),
                                  [&](const auto& x) { return x.index == index; });
      Qmgr().warn("{}: delivery outcome for to=<{}> ({} {}) dropped: {} while it was in delivery",
                  m->id, AddressOf(*m, recorded->pass, index),
                  u == updates.end() ? "" : ToString(u->state), u == updates.end() ? "" : u->status,
                  recorded->gone ? "the operator deleted the message" : "the operator bounced it");
      Metrics::Get().Add("danerelay_outcomes_not_recorded_total",
                         recorded->gone ? "reason=\"deleted\"" : "reason=\"operator\"");
    }
    for (const auto& n : recorded->notices) {
      Log(Service::kBounce).info("{}: {}: {}", m->id, n.what, n.id);
      Metrics::Get().Add("danerelay_notices_total", fmt::format("kind=\"{}\"", n.kind));
    }
    bool failed = false;
    for (const auto& u : recorded->pass.updates) {
      if (u.state == RecipientState::kExpired) {
        Metrics::Get().Add("danerelay_deliveries_total", "outcome=\"expired\"");
        Qmgr().info("{}: to=<{}>, status=expired, returned to sender ({} {})", m->id,
                    AddressOf(*m, recorded->pass, u.index), u.status, u.reply);
      }
      failed = failed || u.state == RecipientState::kFailed || u.state == RecipientState::kExpired;
      if (u.next_attempt) scheduler.Due(*u.next_attempt);
    }
    // Deferred because validation did not work, recorded after it works again (the check
    // passed while this delivery was under way): due now too, as the others were.
    if (health && health->ValidationWorks() &&
        std::any_of(recorded->pass.updates.begin(), recorded->pass.updates.end(),
                    [](const auto& u) {
                      return u.state == RecipientState::kDeferred &&
                             u.cause == queue::Cause::kResolverNotValidating;
                    })) {
      ValidationWorksAgain();
    }
    if (m->sender.empty() && failed) {
      Qmgr().warn("{}: undeliverable mail from <> discarded (no bounce to the null sender)", m->id);
    }
    if (recorded->completed) Qmgr().info("{}: removed", m->id);
    if (!recorded->notices.empty()) Wake();
  }

  // How often a write of an outcome is tried when it fails for a reason that may pass (a full
  // or failing disk, a lock): 1+2+4+8+16 s of pauses, half a minute.
  static constexpr int kOutcomeWrites = 6;

  // Writes `job` in the next group commit; a transient failure (queue::IsTransient) is tried
  // again after a pause, kOutcomeWrites times at most, a permanent one (a constraint, a corrupt
  // file) not at all. While it waits, the message does not count against max_parallel: other
  // mail is claimed and delivered meanwhile (its recipients stay "attempting", so they are not).
  asio::awaitable<tl::expected<void, queue::StoreError>> WriteBounded(queue::Store::WriteJob job,
                                                                      std::string id,
                                                                      std::string what) {
    auto self = shared_from_this();
    bool waiting = false;
    tl::expected<void, queue::StoreError> r;
    for (int attempt = 1;; ++attempt) {
      r = co_await OnStoreWrite(committer, job);
      if (r || stopping || !queue::IsTransient(r.error()) || attempt >= kOutcomeWrites) break;
      const auto pause = std::chrono::seconds(1 << (attempt - 1));
      Qmgr().error(
          "{}: recording {} failed ({}); retrying in {}s ({} of {} tries; its delivery slot "
          "serves other mail meanwhile)",
          id, what, r.error().message, pause.count(), attempt, kOutcomeWrites);
      Metrics::Get().Add("danerelay_outcome_write_retries_total");
      if (!waiting) {
        waiting = true;
        ++unrecorded;
        Kick();  // a slot is free
      }
      asio::steady_timer timer(io, pause);
      co_await timer.async_wait(kUseTuple);
    }
    if (waiting) --unrecorded;
    if (!r && stopping) {
      Qmgr().error(
          "{}: {} could not be recorded before shutdown ({}); its recipients will be attempted "
          "again after a restart",
          id, what, r.error().message);
    } else if (!r) {
      Qmgr().error("{}: recording {} failed ({}); {}", id, what, r.error().message,
                   queue::IsTransient(r.error())
                       ? "giving up after " + std::to_string(kOutcomeWrites) + " tries"
                       : "not retried (a permanent error)");
    }
    co_return r;
  }

  // The outcome could not be written whole: its attempts, notices and backoff go, and the
  // recipients' states alone are written, so that none stays "attempting": a delivered one is
  // delivered (never sent twice), every other one is deferred to min_backoff from now and its
  // next attempt decides it again (a failed one then gets its bounce). Recipients the operator
  // bounced or deleted meanwhile are left alone. When even that cannot be written,
  // they stay in delivery until the daemon restarts (ReleaseAttempting); what was delivered is
  // logged, because a restart sends it again.
  asio::awaitable<void> RecordStatesOnly(std::shared_ptr<const queue::MessageInfo> m,
                                         std::vector<queue::RecipientUpdate> updates,
                                         queue::StoreError why) {
    auto self = shared_from_this();
    const auto now = queue::Clock::now();
    const auto next = now + options.retry.min_backoff;
    for (auto& u : updates) {
      if (u.state == RecipientState::kDelivered) continue;
      u = queue::RecipientUpdate{
          u.index,
          RecipientState::kDeferred,
          next,
          "4.3.0",
          "the outcome of the last attempt could not be recorded: " + why.message,
          u.remote};
    }
    const queue::Store::WriteJob job =
        [m, updates, now](queue::Store& s) -> tl::expected<void, queue::StoreError> {
      auto live = s.AttemptingRecipients(m->id);
      if (!live) return tl::unexpected(live.error());
      if (!*live) return {};
      std::vector<queue::RecipientUpdate> mine = updates;
      std::erase_if(mine, [&](const auto& u) {
        return std::find((*live)->begin(), (*live)->end(), u.index) == (*live)->end();
      });
      return s.RecordDelivery(m->id, mine, {}, {}, now);
    };
    Metrics::Get().Add("danerelay_outcomes_not_recorded_total", "reason=\"write_failed\"");
    if (auto r = co_await WriteBounded(job, m->id, "the recipients' states"); !r) {
      for (const auto& u : updates) {
        if (u.state == RecipientState::kDelivered) {
          Qmgr().error(
              "{}: to=<{}> was delivered but that cannot be recorded: it stays in delivery "
              "until danerelayd restarts, which sends it again",
              m->id, AddressOf(*m, {}, u.index));
        }
      }
      co_return;
    }
    Qmgr().warn(
        "{}: recorded the recipients' states without the attempt, its notices and backoff: "
        "delivered ones are delivered, the others deferred for {}s",
        m->id, options.retry.min_backoff.count());
    scheduler.Due(next);
  }

  static std::string AddressOf(const queue::MessageInfo& m, const queue::PassOutcome& pass,
                               int index) {
    for (const auto& r : m.recipients) {
      if (r.index == index) return r.address;
    }
    for (const auto& r : pass.failed) {
      if (r.index == index) return r.address;
    }
    return "?";
  }
};

DeliveryAgent::DeliveryAgent(asio::io_context& io, DeliveryOptions options, std::string helo_name,
                             dns::Lookup& resolver, queue::Committer& committer,
                             queue::QueueIdGenerator& ids)
    : impl_(std::make_shared<Impl>(io, std::move(options), std::move(helo_name), resolver,
                                   committer, ids)) {}

DeliveryAgent::~DeliveryAgent() { Stop(); }

tl::expected<void, std::string> DeliveryAgent::Start() {
  auto ctx = tls::MakeClientContext(impl_->options.mta_sts.ca_file);
  if (!ctx) return tl::unexpected(ctx.error());
  impl_->tls_context = std::move(*ctx);
  impl_->sts =
      std::make_unique<StsPolicies>(impl_->resolver, &impl_->committer, impl_->options.mta_sts);
  asio::co_spawn(impl_->io, impl_->Run(), LogIfBug(Service::kQmgr, "the delivery scheduler"));
  return {};
}

void DeliveryAgent::Wake() { impl_->Wake(); }

void DeliveryAgent::Reload(DeliveryOptions options, std::string helo_name) {
  // Safe between awaits: the agent runs on this thread, and nothing holds a reference into the
  // old options across a co_await (FindNextHops reads routes before its first one).
  impl_->options = std::move(options);
  impl_->helo_name = std::move(helo_name);
  if (impl_->tls_context) {
    // [tls] ca_file read again (a renewed CA file under the same name too); deliveries under
    // way keep the context they started with.
    auto ctx = tls::MakeClientContext(impl_->options.mta_sts.ca_file);
    if (ctx) {
      impl_->tls_context = std::move(*ctx);
    } else {
      Qmgr().warn("reload: {}; the previous WebPKI trust store stays in use", ctx.error());
    }
  }
  if (impl_->sts) impl_->sts->Reload(impl_->options.mta_sts);
  // Idle sessions were opened under the old settings (trust store, HELO name, TLS policy).
  impl_->connections.Sweep(impl_->io.get_executor(), /*all=*/true);
  impl_->scheduler.SetMaxParallel(impl_->options.max_parallel);
  impl_->MakeReplyMatcher();
  impl_->ConfigureShaping();
  impl_->Kick();
}

std::size_t DeliveryAgent::InFlight() const { return impl_->active; }

void DeliveryAgent::WriteShapingStatus(std::filesystem::path file) {
  impl_->status_file = std::move(file);
  impl_->status_task.Start([self = impl_] { return self->WriteStatus(); });
}

void DeliveryAgent::UseResolverHealth(const ResolverHealth* health) { impl_->health = health; }

void DeliveryAgent::UseDkim(const dkim::SignerSlot* slot) { impl_->dkim = slot; }

void DeliveryAgent::ValidationWorksAgain() { impl_->ValidationWorksAgain(); }

void DeliveryAgent::Stop() {
  impl_->stopping = true;
  impl_->status_task.Stop();
  if (!impl_->status_file.empty()) {  // what it held is gone with it
    std::error_code ignored;
    std::filesystem::remove(impl_->status_file, ignored);
  }
  impl_->connections.Sweep(impl_->io.get_executor(), /*all=*/true);
  impl_->alarm.cancel();
  impl_->Kick();
}

}  // namespace danerelay::relay
