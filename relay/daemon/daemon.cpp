#include "relay/daemon/daemon.hpp"
#include "relay/dkim/slot.hpp"

#include <spdlog/spdlog.h>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include <fmt/ranges.h>

#include <malloc.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <csignal>
#include <optional>
#include <vector>

#include "dns/resolver.hpp"
#include "queue/committer.hpp"
#include "queue/queue_id.hpp"
#include "queue/queue_lock.hpp"
#include "relay/daemon/logging.hpp"
#include "relay/daemon/metrics_server.hpp"
#include "relay/daemon/privileges.hpp"
#include "relay/daemon/reload.hpp"
#include "relay/delivery/delivery_agent.hpp"
#include "relay/delivery/shaping_status.hpp"
#include "relay/health/preflight.hpp"
#include "relay/health/resolver_health.hpp"
#include "relay/inbound/smtp_server.hpp"
#include "relay/tlsrpt/tls_reporter.hpp"
#include "tls/client.hpp"

namespace danerelay::relay {

// Everything the daemon runs, made by Start in this order and destroyed in the reverse: the
// services before the committer they write through, the committer before the io_context, the
// queue's lock last. Empty until Start gets to it.
struct Daemon::Parts {
  std::optional<Identity> identity;  // [server] user; none: stay as started
  std::optional<queue::QueueLock> lock;
  std::unique_ptr<queue::Store> store;  // until the committer takes it
  std::optional<asio::io_context> io;
  std::optional<asio::signal_set> hup;
  std::optional<asio::signal_set> signals;
  queue::QueueIdGenerator ids;
  // [dkim]: signs submissions, notices and reports. Declared before the committer, the server,
  // the agent and the reporter, which hold pointers to it: destroyed after them (the
  // committer's destructor still runs queued writes that compose and sign notices).
  dkim::SignerSlot dkim;
  std::optional<queue::Committer> committer;
  std::unique_ptr<dns::Resolver> resolver;
  std::optional<SmtpServer> server;
  std::optional<DeliveryAgent> agent;
  std::optional<ResolverHealth> health;
  std::shared_ptr<asio::ssl::context> probe_tls;
  std::optional<Preflight> preflight;
  std::optional<TlsReporter> tls_reporter;
  std::optional<MetricsServer> metrics;
  std::optional<asio::steady_timer> drain;
  // Delivery (the agent, the pre-flight check and the TLS reports) is started by Start when
  // enabled, else by a reload that enables it; a reload that disables it stops the agent
  // claiming mail.
  bool delivery_started = false;
  bool delivery_enabled = false;
};

namespace {

tl::unexpected<StartFailure> Fail(int status, std::string message) {
  return tl::unexpected(StartFailure{status, std::move(message)});
}

}  // namespace

Daemon::Daemon(std::filesystem::path config_path, config::Config config)
    : config_path_(std::move(config_path)), config_(std::move(config)) {}

Daemon::~Daemon() = default;

tl::expected<void, StartFailure> Daemon::Start() {
  parts_ = std::make_unique<Parts>();
  Parts& p = *parts_;
  if (auto opened = OpenQueue(); !opened) return opened;
  std::signal(SIGPIPE, SIG_IGN);
  // Messages are strings made and freed all the time. Keep the freed memory of ordinary ones
  // (up to 1 MiB) in the process instead of mapping and unmapping it for each: page faults from
  // that churn were ~6% of the daemon's time with 100 KiB messages (perf). Larger ones are still
  // mapped and returned at once, so a burst of 10 MB messages does not leave the heap large.
  mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);

  p.io.emplace(1);
  // Registered now, so that a signal during the rest of the start-up is queued for the handlers
  // of Run (a SIGTERM then means a clean stop, not death by the default action).
  p.hup.emplace(*p.io, SIGHUP);
  p.signals.emplace(*p.io, SIGINT, SIGTERM);
  if (auto made = MakeServices(); !made) return made;
  if (auto dropped = GiveUpRoot(); !dropped) return dropped;
  RaiseDescriptorLimit();
  p.delivery_enabled = config_.delivery.enabled;
  if (!config_.delivery.enabled) {
    spdlog::warn("delivery is disabled ([delivery] enabled = false): mail is queued, not sent");
  } else if (auto started = StartDelivery(); !started) {
    return Fail(kExitSoftware, fmt::format("delivery: {}", started.error()));
  }
  p.health->Start();
  spdlog::info("danerelayd {} started: hostname={}, configuration={}, queue={}, user={}",
               DANERELAY_VERSION, config_.server.hostname, config_.source,
               queue::Store::DatabasePath(config_.queue).string(),
               p.identity ? p.identity->user : std::to_string(geteuid()));
  // systemd (Type=notify): ready once listeners, queue and delivery are up. Without
  // NOTIFY_SOCKET these do nothing.
  sd_notifyf(0, "READY=1\nSTATUS=accepting mail on %zu listener(s)\nMAINPID=%lu",
             config_.server.listeners.size(), static_cast<unsigned long>(getpid()));
  return {};
}

// Privileges, in this order: who we will be; the queue directory made that account's; one
// daemon per queue; the database opened; listeners bound (MakeServices); then root given up
// (GiveUpRoot).
tl::expected<void, StartFailure> Daemon::OpenQueue() {
  Parts& p = *parts_;
  const std::filesystem::path& dir = config_.queue.path;
  auto identity = ResolveIdentity(config_.server);
  if (!identity) return Fail(kExitConfig, identity.error());
  p.identity = *identity;
  // Nothing in the directory is touched before the lock is ours: it may be another daemon's.
  if (std::error_code ec; !std::filesystem::create_directories(dir, ec) && ec) {
    return Fail(kExitSoftware,
                fmt::format("queue: cannot create {}: {}", dir.string(), ec.message()));
  }
  auto lock = queue::QueueLock::Acquire(dir);
  if (!lock) return Fail(kExitTempFail, lock.error());
  p.lock.emplace(std::move(*lock));
  if (auto secured = SecureQueueDirectory(dir, p.identity); !secured) {
    return Fail(kExitSoftware, fmt::format("queue: {}", secured.error()));
  }
  auto store = queue::Store::Open(config_.queue, queue::OpenMode::kReadWrite);
  if (!store) return Fail(kExitSoftware, fmt::format("queue: {}", store.error().message));
  p.store = std::move(*store);
  // The files SQLite just created (as root: root's) become the account's too.
  if (auto secured = SecureQueueDirectory(dir, p.identity); !secured) {
    return Fail(kExitSoftware, fmt::format("queue: {}", secured.error()));
  }
  return {};
}

// Makes every service and binds the SMTP listeners and the metrics endpoint (still as root).
// The background work (delivery, checks, reports) starts later.
tl::expected<void, StartFailure> Daemon::MakeServices() {
  Parts& p = *parts_;
  const config::Config& cfg = config_;
  p.committer.emplace(std::move(p.store));
  auto resolver = dns::Resolver::Create(*p.io, cfg.dns);
  if (!resolver) return Fail(kExitConfig, fmt::format("dns: {}", resolver.error()));
  p.resolver = std::move(*resolver);
  p.server.emplace(*p.io, cfg.server, *p.committer, p.ids, *p.resolver);
  p.agent.emplace(*p.io, cfg.delivery, cfg.server.hostname, *p.resolver, *p.committer, p.ids);
  p.server->OnQueued([&p] { p.agent->Wake(); });
  // Loaded as root, like the listeners' keys; a reload reads them as [server] user.
  if (auto loaded = p.dkim.Load(cfg.server.dkim, cfg.server.hostname); !loaded) {
    return Fail(kExitConfig, "[dkim] " + loaded.error());
  }
  p.server->UseDkim(&p.dkim);
  p.agent->UseDkim(&p.dkim);
  if (auto started = p.server->Start(); !started) return Fail(kExitSoftware, started.error());
  p.health.emplace(*p.io, *p.resolver, cfg.dns, ResolverStatusFile(cfg.queue.path));
  p.agent->UseResolverHealth(&*p.health);
  p.agent->WriteShapingStatus(ShapingStatusFile(cfg.queue.path));
  p.health->OnRecovered([&p] { p.agent->ValidationWorksAgain(); });
  auto probe_tls = tls::MakeClientContext();
  if (!probe_tls) return Fail(kExitSoftware, fmt::format("tls: {}", probe_tls.error()));
  p.probe_tls = *probe_tls;
  p.preflight.emplace(*p.io, *p.resolver, cfg.delivery, cfg.server.hostname, p.probe_tls,
                      PreflightStatusFile(cfg.queue.path));
  p.preflight->CheckDkimKeys(cfg.server.dkim.keys);
  p.tls_reporter.emplace(*p.io, *p.resolver, *p.committer, p.ids, cfg.delivery, cfg.server.hostname,
                         [&p] { p.agent->Wake(); });
  p.tls_reporter->UseDkim(&p.dkim);
  p.metrics.emplace(*p.io, cfg.metrics, cfg.queue,
                    [&p] { return p.health->MetricsText() + p.preflight->MetricsText(); });
  if (auto started = p.metrics->Start(); !started) return Fail(kExitSoftware, started.error());
  return {};
}

tl::expected<void, StartFailure> Daemon::GiveUpRoot() {
  const std::optional<Identity>& identity = parts_->identity;
  if (identity && geteuid() == 0) {  // (started as the account itself: nothing to give up)
    if (auto dropped = DropPrivileges(*identity); !dropped) {
      // Never go on as root when the operator asked for an unprivileged account.
      return Fail(kExitSoftware,
                  fmt::format("cannot run as {}: {}", identity->user, dropped.error()));
    }
  } else if (geteuid() == 0) {
    spdlog::warn("running as root; set [server] user to an unprivileged account");
  }
  return {};
}

// Every client connection, sender probe and delivery holds a descriptor; so do the queue, the
// resolver and the listeners, and the metrics endpoint's connections.
void Daemon::RaiseDescriptorLimit() {
  const config::Config& cfg = config_;
  const std::uint64_t wanted_fds = 2ull * cfg.server.limits.max_connections +
                                   cfg.delivery.max_parallel + 64 +
                                   (cfg.metrics.address.empty() ? 0 : kMetricsMaxConnections);
  if (const auto fds = RaiseFileLimit(wanted_fds); fds < wanted_fds) {
    spdlog::warn(
        "the file descriptor limit is {}, below the {} that max_connections = {} and "
        "max_parallel = {} may need; raise it (LimitNOFILE=, ulimit -n) or lower them. Past the "
        "limit new connections wait in the listen backlog",
        fds, wanted_fds, cfg.server.limits.max_connections, cfg.delivery.max_parallel);
  }
}

tl::expected<void, std::string> Daemon::StartDelivery() {
  Parts& p = *parts_;
  if (auto started = p.agent->Start(); !started) return started;
  p.preflight->Start();
  p.tls_reporter->Start();
  p.delivery_started = true;
  return {};
}

int Daemon::Run() {
  Parts& p = *parts_;
  AwaitHup();
  p.drain.emplace(*p.io);
  p.signals->async_wait([this](std::error_code ec, int signo) {
    if (ec) return;
    Drain(signo);
  });
  p.io->run();
  // The committer's destructor commits whatever was already submitted before it returns.
  return 0;
}

void Daemon::AwaitHup() {
  parts_->hup->async_wait([this](std::error_code ec, int) {
    if (ec) return;
    Reload();
    AwaitHup();
  });
}

// SIGHUP: re-read the configuration; an invalid file keeps the old one.
void Daemon::Reload() {
  sd_notify(0, "RELOADING=1");
  auto fresh = config::LoadFileOrDefaults(config_path_);
  // Read as [server] user now, not root: a file it cannot read would otherwise be skipped
  // piece by piece (the old accounts kept) under a "reloaded configuration".
  std::vector<std::string> unreadable;
  if (fresh) unreadable = config::Unreadable(config::FilesReadOnReload(*fresh));
  if (!fresh) {
    spdlog::warn("reload failed, keeping the old configuration: {}", fresh.error().message);
  } else if (!unreadable.empty()) {
    spdlog::error("reload failed, keeping the old configuration: {}", fmt::join(unreadable, "; "));
  } else {
    Apply(*fresh);
  }
  sd_notify(0, "READY=1");
}

void Daemon::Apply(const config::Config& fresh) {
  Parts& p = *parts_;
  SetUpLogging("danerelay/master", fresh.log);
  if (auto loaded = p.dkim.Load(fresh.server.dkim, fresh.server.hostname); !loaded) {
    spdlog::warn("reload: keeping the old DKIM keys: {}", loaded.error());
  }
  p.server->Reload(fresh.server);
  p.agent->Reload(fresh.delivery, fresh.server.hostname);
  p.health->Reload(fresh.dns);
  if (p.delivery_started) {
    p.preflight->CheckDkimKeys(fresh.server.dkim.keys);
    p.preflight->Reload(fresh.delivery, fresh.server.hostname);
    p.tls_reporter->Reload(fresh.delivery, fresh.server.hostname);
  }
  ReloadDelivery(fresh.delivery.enabled);
  // What a running daemon cannot take: said, not silently ignored. Compared with the
  // configuration it started with, so that it is said again at each reload until a restart.
  if (const std::vector<std::string> later = RestartNeeded(config_, fresh); !later.empty()) {
    spdlog::warn("reload: changes to {} take effect only after a restart", fmt::join(later, ", "));
  }
  spdlog::info("reloaded configuration from {}", fresh.source);
}

// [delivery] enabled, switched by a reload.
void Daemon::ReloadDelivery(bool enabled) {
  Parts& p = *parts_;
  if (enabled && !p.delivery_enabled) {
    if (p.delivery_started) {
      spdlog::info("reload: delivery enabled again");
    } else if (auto started = StartDelivery(); started) {
      spdlog::info("reload: delivery enabled");
    } else {
      spdlog::error("reload: delivery cannot start: {}", started.error());
    }
  } else if (!enabled && p.delivery_enabled) {
    spdlog::warn(
        "reload: delivery is disabled ([delivery] enabled = false): mail is queued, not "
        "sent; the deliveries under way finish");
  }
  p.delivery_enabled = enabled && p.delivery_started;  // else: next reload
}

// SIGTERM: stop accepting and claiming; sessions get 421 4.3.2 (a DATA in progress may finish
// within 10 s); deliveries in flight finish and record their outcome; then exit. Bounded: after
// 30 s whatever still runs is cut (its recipients are retried after a restart, as after a
// crash).
void Daemon::Drain(int signo) {
  Parts& p = *parts_;
  spdlog::info("terminating on signal {}: {} session(s) open, {} message(s) in delivery", signo,
               p.server->ActiveSessions(), p.agent->InFlight());
  sd_notify(0, "STOPPING=1");
  p.server->Stop();
  p.agent->Stop();
  p.metrics->Stop();
  p.health->Stop();
  p.preflight->Stop();
  p.tls_reporter->Stop();
  p.hup->cancel();
  WaitDrained(std::chrono::steady_clock::now() + std::chrono::seconds(30));
}

void Daemon::WaitDrained(std::chrono::steady_clock::time_point deadline) {
  Parts& p = *parts_;
  const std::size_t sessions = p.server->ActiveSessions(), deliveries = p.agent->InFlight();
  if (sessions == 0 && deliveries == 0) {
    p.io->stop();
    return;
  }
  if (std::chrono::steady_clock::now() >= deadline) {
    spdlog::warn(
        "shutdown: {} session(s) and {} message(s) in delivery still running after 30s; "
        "stopping anyway (those recipients are retried after a restart)",
        sessions, deliveries);
    p.io->stop();
    return;
  }
  p.drain->expires_after(std::chrono::milliseconds(50));
  p.drain->async_wait([this, deadline](std::error_code) { WaitDrained(deadline); });
}

}  // namespace danerelay::relay
