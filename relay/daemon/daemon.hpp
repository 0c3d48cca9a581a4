#pragma once
// The daemon's life once its configuration is read: Start opens and locks the queue, binds the
// listeners, gives root up and starts the services; Run is the event loop, where SIGHUP reloads
// the configuration and SIGINT/SIGTERM drain and stop. main (relay/daemon/main.cpp) parses the
// command line, reads the configuration and sets up logging; it does none of this.
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include <tl/expected.hpp>

#include "config/config.hpp"

namespace danerelay::relay {

// Exit statuses, as danerelayd(8) lists them (sysexits.h).
inline constexpr int kExitUsage = 64;     // EX_USAGE: an unknown option or a missing value
inline constexpr int kExitSoftware = 70;  // EX_SOFTWARE: cannot open the queue, bind or drop root
inline constexpr int kExitTempFail = 75;  // EX_TEMPFAIL: another daemon holds the queue
inline constexpr int kExitConfig = 78;    // EX_CONFIG: invalid configuration or resolver set-up

// Why the daemon did not start: the exit status and the line for the log ("fatal: ...").
struct StartFailure {
  int status = kExitSoftware;
  std::string message;
};

class Daemon {
 public:
  // `config_path`: what --config named ("": the default), read again on each SIGHUP. `config`:
  // what it gave at start; a reload is compared with it for what needs a restart.
  Daemon(std::filesystem::path config_path, config::Config config);
  // Closes what Start opened, in the reverse order; the queue's committer first commits what
  // was already submitted.
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // In this order: the account to run as; the queue directory, its lock, the database; the
  // signal handlers (a SIGTERM from here on is a clean stop); made, as root: the resolver, the
  // SMTP server (bound), the resolver's self-check, the pre-flight check, the TLS reporter and
  // the metrics endpoint (bound); root given up; the file limit raised; delivery (the agent,
  // the pre-flight check, the TLS reports) started when enabled; the self-check started; then
  // READY=1 to systemd. Call once. After a failure, destroy the daemon.
  tl::expected<void, StartFailure> Start();
  // After Start: runs until SIGINT or SIGTERM has drained the daemon. Returns the exit status.
  int Run();

 private:
  struct Parts;

  tl::expected<void, StartFailure> OpenQueue();
  tl::expected<void, StartFailure> MakeServices();
  tl::expected<void, StartFailure> GiveUpRoot();
  void RaiseDescriptorLimit();
  tl::expected<void, std::string> StartDelivery();

  void AwaitHup();
  void Reload();  // SIGHUP
  void Apply(const config::Config& fresh);
  void ReloadDelivery(bool enabled);
  void Drain(int signo);  // SIGINT, SIGTERM
  void WaitDrained(std::chrono::steady_clock::time_point deadline);

  const std::filesystem::path config_path_;
  const config::Config config_;  // as started: never replaced by a reload
  std::unique_ptr<Parts> parts_;
};

}  // namespace danerelay::relay
