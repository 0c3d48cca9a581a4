// danerelayd: the daemon. Wires config, queue and SMTP server together and runs the event loop.
#include <spdlog/spdlog.h>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>

#include <CLI/CLI.hpp>

#include <malloc.h>

#include <csignal>
#include <functional>
#include <iostream>

#include "config/config.hpp"
#include "dns/resolver.hpp"
#include "queue/committer.hpp"
#include "queue/queue_id.hpp"
#include "relay/inbound/smtp_server.hpp"
#include "relay/outbound/delivery_agent.hpp"

namespace {
constexpr int kExitConfig = 78;    // EX_CONFIG
constexpr int kExitSoftware = 70;  // EX_SOFTWARE: cannot open the queue or bind
}  // namespace

int main(int argc, char** argv) {
  using namespace danerelay;
  CLI::App app{"danerelayd: outbound SMTP relay with DANE (RFC 7672)"};
  std::string config_path;
  app.add_option("-c,--config", config_path, "TOML configuration file (default: built-in)");
  CLI11_PARSE(app, argc, argv);

  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e danerelayd[%P]: %v");
  auto cfg = config::LoadFileOrDefaults(config_path);
  if (!cfg) {
    std::cerr << "danerelayd: " << cfg.error().message << "\n";
    return kExitConfig;
  }
  auto store = queue::Store::Open(cfg->queue, queue::OpenMode::kReadWrite);
  if (!store) {
    std::cerr << "danerelayd: queue: " << store.error().message << "\n";
    return kExitSoftware;
  }
  std::signal(SIGPIPE, SIG_IGN);
  // Messages are strings made and freed all the time. Keep the freed memory of ordinary ones
  // (up to 1 MiB) in the process instead of mapping and unmapping it for each: page faults from
  // that churn were ~6% of the daemon's time with 100 KiB messages (perf). Larger ones are still
  // mapped and returned at once, so a burst of 10 MB messages does not leave the heap large.
  mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);

  asio::io_context io(1);
  queue::QueueIdGenerator ids;
  queue::Committer committer(std::move(*store));
  auto resolver = dns::Resolver::Create(io, cfg->dns);
  if (!resolver) {
    std::cerr << "danerelayd: dns: " << resolver.error() << "\n";
    return kExitConfig;
  }
  relay::SmtpServer server(io, cfg->server, committer, ids, **resolver);
  relay::DeliveryAgent agent(io, cfg->delivery, cfg->server.hostname, **resolver, committer, ids);
  server.OnQueued([&agent] { agent.Wake(); });
  if (auto started = server.Start(); !started) {
    std::cerr << "danerelayd: " << started.error() << "\n";
    return kExitSoftware;
  }
  if (!cfg->delivery.enabled) {
    spdlog::warn("delivery is disabled ([delivery] enabled = false): mail is queued, not sent");
  } else if (auto started = agent.Start(); !started) {
    std::cerr << "danerelayd: delivery: " << started.error() << "\n";
    return kExitSoftware;
  }
  spdlog::info("danerelayd {} started: hostname={}, configuration={}, queue={}", "0.1.0",
               cfg->server.hostname, cfg->source, queue::Store::DatabasePath(cfg->queue).string());

  // SIGHUP: re-read the configuration; an invalid file keeps the old one.
  asio::signal_set hup(io, SIGHUP);
  std::function<void()> await_hup = [&] {
    hup.async_wait([&](std::error_code ec, int) {
      if (ec) return;
      auto fresh = config::LoadFileOrDefaults(config_path);
      if (!fresh) {
        spdlog::error("reload failed, keeping the old configuration: {}", fresh.error().message);
      } else {
        server.Reload(fresh->server);
        agent.Reload(fresh->delivery);
        if (fresh->queue.path != cfg->queue.path || fresh->dns.forwarders != cfg->dns.forwarders ||
            fresh->dns.trust_anchor_file != cfg->dns.trust_anchor_file) {
          spdlog::warn("reload: [queue] and [dns] changes take effect only after a restart");
        }
        spdlog::info("reloaded configuration from {}", fresh->source);
      }
      await_hup();
    });
  };
  await_hup();

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code ec, int signo) {
    if (ec) return;
    spdlog::info("terminating on signal {}", signo);
    server.Stop();
    agent.Stop();
    hup.cancel();
    io.stop();
  });
  io.run();
  // The committer's destructor commits whatever was already submitted before it returns.
  return 0;
}
