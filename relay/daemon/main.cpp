// danerelayd: the daemon. Parses the command line, reads the configuration, sets up logging and
// runs the Daemon (relay/daemon/daemon.hpp), which wires queue, SMTP server and delivery together.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

#include <sys/stat.h>

#include <iostream>
#include <string>
#include <utility>

#include "config/config.hpp"
#include "relay/daemon/daemon.hpp"
#include "relay/daemon/logging.hpp"

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
    return app.exit(e) == 0 ? 0 : relay::kExitUsage;
  }

  relay::SetUpLogging("danerelay/master", relay::LogOptions{});
  // Mail is private: whatever the daemon creates (queue, WAL, lock file) is its account's only.
  umask(077);
  auto cfg = config::LoadFileOrDefaults(config_path);
  if (!cfg) {
    std::cerr << "danerelayd: fatal: " << cfg.error().message << "\n";
    return relay::kExitConfig;
  }
  relay::SetUpLogging("danerelay/master", cfg->log);
  const bool to_syslog = cfg->log.syslog;
  relay::Daemon daemon(config_path, std::move(*cfg));
  if (auto started = daemon.Start(); !started) {
    // A reason not to start: "fatal: ..." in the log, and on stderr too when the log is syslog.
    spdlog::critical("{}", started.error().message);
    if (to_syslog) std::cerr << "danerelayd: fatal: " << started.error().message << "\n";
    return started.error().status;
  }
  return daemon.Run();
}
