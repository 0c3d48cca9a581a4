#pragma once
// The TOML configuration: schema, built-in defaults and validation. Turns the file into each
// module's plain Options structs; the only place that includes toml++.
//
// Every error names the file, the line and the key ("danerelay.toml:12: limits.max_recipients:
// expected an integer, got a string"); unknown keys are errors too, so a typo never silently
// falls back to a default.
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "dns/options.hpp"
#include "queue/store.hpp"
#include "relay/options.hpp"

namespace danerelay::config {

struct Config {
  relay::ServerOptions server;
  queue::StoreOptions queue;
  dns::ResolverOptions dns;
  relay::DeliveryOptions delivery;
  relay::LogOptions log;
  relay::MetricsOptions metrics;
  std::string source = "built-in defaults";  // where this configuration came from
};

struct ConfigError {
  ConfigError() = default;
  explicit ConfigError(std::string first, std::vector<std::string> every = {})
      : message(std::move(first)), all(std::move(every)) {}

  std::string message;  // the first problem
  // Every problem the loader found, `message` first (empty when there is only `message`, as
  // for a syntax error). Within a table reading stops at its first problem, since later
  // checks may build on the value that failed; every table is read.
  std::vector<std::string> all;
};

// "5m", "300s", "4h", "5d", or a bare number of seconds; nullopt when malformed.
std::optional<std::chrono::seconds> ParseDuration(std::string_view text);

// Built-in defaults: listen on 127.0.0.1:2525, trust 127.0.0.0/8 and ::1, queue in ./data.
Config Defaults();

// Relative paths in a file are taken relative to the file's directory.
// `dkim_keys`: load every [[dkim.key]] key_file (false only for `danerelay dkim keygen`, which
// may be creating one the configuration already names).
tl::expected<Config, ConfigError> LoadFile(const std::filesystem::path& path,
                                           bool dkim_keys = true);
// Where both programs look when --config is not given (/etc/danerelay/danerelay.toml unless
// built with -DDANERELAY_DEFAULT_CONFIG=...).
std::filesystem::path DefaultConfigFile();
// The --config option of both programs: the file; when `path` is empty, DefaultConfigFile()
// when it exists, else the built-in defaults. Config::source says which.
tl::expected<Config, ConfigError> LoadFileOrDefaults(const std::filesystem::path& path,
                                                     bool dkim_keys = true);
// `source_name` is used in error messages; relative paths are relative to `base_dir`.
tl::expected<Config, ConfigError> LoadString(std::string_view toml, std::string_view source_name,
                                             const std::filesystem::path& base_dir,
                                             bool dkim_keys = true);

// A file the daemon reads again on reload (SIGHUP), when it no longer is root but [server] user:
// the setting that names it ("[auth] users_file") and its path.
struct FileRead {
  std::string what;
  std::filesystem::path path;
};

// Every file a reload reads: the configuration file itself (when `config` came from one), the
// AUTH accounts, the sender allow-list, the certificates and keys of TLS listeners, [tls] ca_file,
// route credentials and client certificates, DKIM keys.
// (The trust anchor and root hints are read at start only, as root.)
std::vector<FileRead> FilesReadOnReload(const Config& config);

// Those of `files` this process cannot open for reading, each as "what path: reason".
std::vector<std::string> Unreadable(const std::vector<FileRead>& files);

}  // namespace danerelay::config
