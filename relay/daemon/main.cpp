// danerelayd: the daemon. Wires config, queue and SMTP server together and runs the event loop.
#include <spdlog/spdlog.h>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include <fmt/ranges.h>
#include <CLI/CLI.hpp>

#include <malloc.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <csignal>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "dns/resolver.hpp"
#include "queue/committer.hpp"
#include "queue/queue_id.hpp"
#include "queue/queue_lock.hpp"
#include "relay/daemon/logging.hpp"
#include "relay/daemon/metrics_server.hpp"
#include "relay/daemon/privileges.hpp"
#include "relay/daemon/reload.hpp"
#include "relay/delivery/delivery_agent.hpp"
#include "relay/health/preflight.hpp"
#include "relay/health/resolver_health.hpp"
#include "relay/inbound/smtp_server.hpp"
#include "relay/tlsrpt/tls_reporter.hpp"
#include "tls/client.hpp"

namespace {
constexpr int kExitConfig = 78;    // EX_CONFIG
constexpr int kExitSoftware = 70;  // EX_SOFTWARE: cannot open the queue or bind
constexpr int kExitTempFail = 75;  // EX_TEMPFAIL: another daemon holds the queue
constexpr int kExitUsage = 64;     // EX_USAGE: an unknown option or a missing value
}  // namespace

int main(int argc, char** argv) {
  using namespace danerelay;
  CLI::App app{"danerelayd: outbound SMTP relay with DANE (RFC 7672)"};
  std::string config_path;
  app.add_option("-c,--config", config_path,
                 "TOML configuration file (default: " + config::DefaultConfigFile().string() +
                     " when it exists, else the built-in defaults)");
  app.set_version_flag("--version", "danerelayd " DANERELAY_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // EX_USAGE as danerelayd(8) says, not CLI11's own codes; --help and --version stay 0.
    return app.exit(e) == 0 ? 0 : kExitUsage;
  }

  relay::SetUpLogging("danerelay/master", relay::LogOptions{});
  // Mail is private: whatever the daemon creates (queue, WAL, lock file) is its account's only.
  umask(077);
  auto cfg = config::LoadFileOrDefaults(config_path);
  if (!cfg) {
    std::cerr << "danerelayd: fatal: " << cfg.error().message << "\n";
    return kExitConfig;
  }
  relay::SetUpLogging("danerelay/master", cfg->log);
  // A reason not to start: "fatal: ..." in the log, and on stderr too when the log is syslog.
  auto fatal = [&cfg](int status, const std::string& message) {
    spdlog::critical("{}", message);
    if (cfg->log.syslog) std::cerr << "danerelayd: fatal: " << message << "\n";
    return status;
  };
  // Privileges, in this order: who we will be; the queue directory made that account's; one
  // daemon per queue; the database opened; listeners bound; then root given up (below).
  auto identity = relay::ResolveIdentity(cfg->server);
  if (!identity) {
    return fatal(kExitConfig, identity.error());
  }
  // Nothing in the directory is touched before the lock is ours: it may be another daemon's.
  if (std::error_code ec; !std::filesystem::create_directories(cfg->queue.path, ec) && ec) {
    return fatal(kExitSoftware, fmt::format("queue: cannot create {}: {}", cfg->queue.path.string(),
                                            ec.message()));
  }
  auto lock = queue::QueueLock::Acquire(cfg->queue.path);
  if (!lock) {
    return fatal(kExitTempFail, lock.error());
  }
  if (auto secured = relay::SecureQueueDirectory(cfg->queue.path, *identity); !secured) {
    return fatal(kExitSoftware, fmt::format("queue: {}", secured.error()));
  }
  auto store = queue::Store::Open(cfg->queue, queue::OpenMode::kReadWrite);
  if (!store) {
    return fatal(kExitSoftware, fmt::format("queue: {}", store.error().message));
  }
  // The files SQLite just created (as root: root's) become the account's too.
  if (auto secured = relay::SecureQueueDirectory(cfg->queue.path, *identity); !secured) {
    return fatal(kExitSoftware, fmt::format("queue: {}", secured.error()));
  }
  std::signal(SIGPIPE, SIG_IGN);
  // Messages are strings made and freed all the time. Keep the freed memory of ordinary ones
  // (up to 1 MiB) in the process instead of mapping and unmapping it for each: page faults from
  // that churn were ~6% of the daemon's time with 100 KiB messages (perf). Larger ones are still
  // mapped and returned at once, so a burst of 10 MB messages does not leave the heap large.
  mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);

  asio::io_context io(1);
  // Registered now, so that a signal during the rest of the start-up is queued for the handlers
  // below (a SIGTERM then means a clean stop, not death by the default action).
  asio::signal_set hup(io, SIGHUP);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  queue::QueueIdGenerator ids;
  queue::Committer committer(std::move(*store));
  auto resolver = dns::Resolver::Create(io, cfg->dns);
  if (!resolver) {
    return fatal(kExitConfig, fmt::format("dns: {}", resolver.error()));
  }
  relay::SmtpServer server(io, cfg->server, committer, ids, **resolver);
  relay::DeliveryAgent agent(io, cfg->delivery, cfg->server.hostname, **resolver, committer, ids);
  server.OnQueued([&agent] { agent.Wake(); });
  if (auto started = server.Start(); !started) {
    return fatal(kExitSoftware, started.error());
  }
  relay::ResolverHealth health(io, **resolver, cfg->dns,
                               relay::ResolverStatusFile(cfg->queue.path));
  agent.UseResolverHealth(&health);
  health.OnRecovered([&agent] { agent.ValidationWorksAgain(); });
  auto probe_tls = tls::MakeClientContext();
  if (!probe_tls) return fatal(kExitSoftware, fmt::format("tls: {}", probe_tls.error()));
  relay::Preflight preflight(io, **resolver, cfg->delivery, cfg->server.hostname, *probe_tls,
                             relay::PreflightStatusFile(cfg->queue.path));
  relay::TlsReporter tls_reporter(io, **resolver, committer, ids, cfg->delivery,
                                  cfg->server.hostname, [&agent] { agent.Wake(); });
  relay::MetricsServer metrics(io, cfg->metrics, cfg->queue, [&health, &preflight] {
    return health.MetricsText() + preflight.MetricsText();
  });
  if (auto started = metrics.Start(); !started) return fatal(kExitSoftware, started.error());
  if (*identity && geteuid() == 0) {  // (started as the account itself: nothing to give up)
    if (auto dropped = relay::DropPrivileges(**identity); !dropped) {
      // Never go on as root when the operator asked for an unprivileged account.
      return fatal(kExitSoftware,
                   fmt::format("cannot run as {}: {}", (*identity)->user, dropped.error()));
    }
  } else if (geteuid() == 0) {
    spdlog::warn("running as root; set [server] user to an unprivileged account");
  }
  // Every client connection, sender probe and delivery holds a descriptor; so do the queue,
  // the resolver and the listeners, and the metrics endpoint's connections.
  const std::uint64_t wanted_fds =
      2ull * cfg->server.limits.max_connections + cfg->delivery.max_parallel + 64 +
      (cfg->metrics.address.empty() ? 0 : relay::kMetricsMaxConnections);
  if (const auto fds = relay::RaiseFileLimit(wanted_fds); fds < wanted_fds) {
    spdlog::warn(
        "the file descriptor limit is {}, below the {} that max_connections = {} and "
        "max_parallel = {} may need; raise it (LimitNOFILE=, ulimit -n) or lower them. Past the "
        "limit new connections wait in the listen backlog",
        fds, wanted_fds, cfg->server.limits.max_connections, cfg->delivery.max_parallel);
  }
  // Delivery, when enabled: the agent, the pre-flight check and the TLS reports. Started later
  // by a reload that enables it; a reload that disables it stops the agent claiming mail.
  bool delivery_started = false;
  bool delivery_enabled = cfg->delivery.enabled;
  auto start_delivery = [&]() -> tl::expected<void, std::string> {
    if (auto started = agent.Start(); !started) return started;
    preflight.Start();
    tls_reporter.Start();
    delivery_started = true;
    return {};
  };
  if (!cfg->delivery.enabled) {
    spdlog::warn("delivery is disabled ([delivery] enabled = false): mail is queued, not sent");
  } else if (auto started = start_delivery(); !started) {
    return fatal(kExitSoftware, fmt::format("delivery: {}", started.error()));
  }
  health.Start();
  spdlog::info("danerelayd {} started: hostname={}, configuration={}, queue={}, user={}",
               DANERELAY_VERSION, cfg->server.hostname, cfg->source,
               queue::Store::DatabasePath(cfg->queue).string(),
               *identity ? (*identity)->user : std::to_string(geteuid()));
  // systemd (Type=notify): ready once listeners, queue and delivery are up. Without
  // NOTIFY_SOCKET these do nothing.
  sd_notifyf(0, "READY=1\nSTATUS=accepting mail on %zu listener(s)\nMAINPID=%lu",
             cfg->server.listeners.size(), static_cast<unsigned long>(getpid()));

  // SIGHUP: re-read the configuration; an invalid file keeps the old one.
  std::function<void()> await_hup = [&] {
    hup.async_wait([&](std::error_code ec, int) {
      if (ec) return;
      sd_notify(0, "RELOADING=1");
      auto fresh = config::LoadFileOrDefaults(config_path);
      // Read as [server] user now, not root: a file it cannot read would otherwise be skipped
      // piece by piece (the old accounts kept) under a "reloaded configuration".
      std::vector<std::string> unreadable;
      if (fresh) unreadable = config::Unreadable(config::FilesReadOnReload(*fresh));
      if (!fresh) {
        spdlog::warn("reload failed, keeping the old configuration: {}", fresh.error().message);
      } else if (!unreadable.empty()) {
        spdlog::error("reload failed, keeping the old configuration: {}",
                      fmt::join(unreadable, "; "));
      } else {
        relay::SetUpLogging("danerelay/master", fresh->log);
        server.Reload(fresh->server);
        agent.Reload(fresh->delivery, fresh->server.hostname);
        health.Reload(fresh->dns);
        if (delivery_started) {
          preflight.Reload(fresh->delivery, fresh->server.hostname);
          tls_reporter.Reload(fresh->delivery, fresh->server.hostname);
        }
        if (fresh->delivery.enabled && !delivery_enabled) {
          if (delivery_started) {
            spdlog::info("reload: delivery enabled again");
          } else if (auto started = start_delivery(); started) {
            spdlog::info("reload: delivery enabled");
          } else {
            spdlog::error("reload: delivery cannot start: {}", started.error());
          }
        } else if (!fresh->delivery.enabled && delivery_enabled) {
          spdlog::warn(
              "reload: delivery is disabled ([delivery] enabled = false): mail is queued, not "
              "sent; the deliveries under way finish");
        }
        delivery_enabled = fresh->delivery.enabled && delivery_started;  // else: next reload
        // What a running daemon cannot take: said, not silently ignored.
        const std::vector<std::string> later = relay::RestartNeeded(*cfg, *fresh);
        if (!later.empty()) {
          spdlog::warn("reload: changes to {} take effect only after a restart",
                       fmt::join(later, ", "));
        }
        spdlog::info("reloaded configuration from {}", fresh->source);
      }
      sd_notify(0, "READY=1");
      await_hup();
    });
  };
  await_hup();

  // SIGTERM: stop accepting and claiming; sessions get 421 4.3.2 (a DATA in progress may
  // finish within 10 s); deliveries in flight finish and record their outcome; then exit.
  // Bounded: after 30 s whatever still runs is cut (its recipients are retried after a
  // restart, as after a crash).
  asio::steady_timer drain(io);
  std::function<void(std::chrono::steady_clock::time_point)> wait_drained =
      [&](std::chrono::steady_clock::time_point deadline) {
        const std::size_t sessions = server.ActiveSessions(), deliveries = agent.InFlight();
        if (sessions == 0 && deliveries == 0) {
          io.stop();
          return;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
          spdlog::warn(
              "shutdown: {} session(s) and {} message(s) in delivery still running after 30s; "
              "stopping "
              "anyway (those recipients are retried after a restart)",
              sessions, deliveries);
          io.stop();
          return;
        }
        drain.expires_after(std::chrono::milliseconds(50));
        drain.async_wait([&, deadline](std::error_code) { wait_drained(deadline); });
      };
  signals.async_wait([&](std::error_code ec, int signo) {
    if (ec) return;
    spdlog::info("terminating on signal {}: {} session(s) open, {} message(s) in delivery", signo,
                 server.ActiveSessions(), agent.InFlight());
    sd_notify(0, "STOPPING=1");
    server.Stop();
    agent.Stop();
    metrics.Stop();
    health.Stop();
    preflight.Stop();
    tls_reporter.Stop();
    hup.cancel();
    wait_drained(std::chrono::steady_clock::now() + std::chrono::seconds(30));
  });
  io.run();
  // The committer's destructor commits whatever was already submitted before it returns.
  return 0;
}
