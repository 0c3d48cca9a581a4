#include "config/config.hpp"

#include <fcntl.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <vector>

#include "config/load_tables.hpp"

namespace danerelay::config {
namespace {

std::string DefaultHostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

}  // namespace

constexpr long long kMaxDurationSeconds = 100LL * 365 * 86400;

std::optional<std::chrono::seconds> ParseDuration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  long long n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || n < 0) return std::nullopt;
  const std::string_view unit(end, static_cast<size_t>(text.data() + text.size() - end));
  long long scale;
  if (unit.empty() || unit == "s") {
    scale = 1;
  } else if (unit == "m") {
    scale = 60;
  } else if (unit == "h") {
    scale = 3600;
  } else if (unit == "d") {
    scale = 86400;
  } else {
    return std::nullopt;
  }
  // A century at most: far beyond any queue, and far from the clock's overflow.
  if (n > kMaxDurationSeconds / scale) return std::nullopt;
  return std::chrono::seconds(n * scale);
}

// toml++ 3.3 (Debian 12) reaches __builtin_unreachable() when it asks whether some non-ASCII
// characters (U+00A1..U+0499, U+2C6E..U+3067, U+FBE6..U+FEFE) are whitespace, which it does
// wherever it looks for whitespace or for the end of a value: undefined behaviour on a crafted
// file (found by fuzz_config). TOML allows non-ASCII only inside strings and comments, so a
// file with one anywhere else is refused before toml++ sees it. This follows the file as
// toml++ reads it: a bare value (a number, a date, true) runs to the next whitespace, "]", "}",
// "," or "#", and toml++ looks at every character of it, quotes included, so a quote opens a
// string only where a key or a value may start; inside a basic string, what follows a
// backslash (an escape, or a line-ending backslash before skipped whitespace) must be ASCII.
// Returns the offset of the first offending byte.
namespace {
std::optional<std::size_t> NonAsciiOutsideStrings(std::string_view t) {
  auto non_ascii = [&](std::size_t k) { return static_cast<unsigned char>(t[k]) >= 0x80; };
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  enum class Open { kArray, kInlineTable, kHeader };
  std::vector<Open> open;
  bool value_next = false;  // after "=", or "[" / "," in an array: a value comes next
  char prev = '\n';         // the last significant character
  std::size_t i = 0;
  while (i < t.size()) {
    const char c = t[i];
    if (blank(c)) {
      ++i;
      continue;
    }
    if (non_ascii(i)) return i;
    const bool in_array = !open.empty() && open.back() == Open::kArray;
    if (c == '#') {  // a comment, to the end of the line
      i = t.find('\n', i);
      if (i == std::string_view::npos) break;
      continue;
    }
    if ((c == '"' || c == '\'') &&
        std::string_view("=[{,.\n").find(prev) != std::string_view::npos) {
      const std::string close(t.substr(i, 3) == std::string(3, c) ? 3 : 1, c);
      i += close.size();
      while (i < t.size()) {
        if (c == '"' && t[i] == '\\') {
          ++i;
          if (i < t.size() && non_ascii(i)) return i;
          if (close.size() == 3 && i < t.size() && (blank(t[i]) || t[i] == '\n')) {
            // A line-ending backslash: toml++ skips whitespace and newlines, asking about each
            // character up to the next one that is neither (which may start another escape).
            while (i < t.size() && (blank(t[i]) || t[i] == '\n')) ++i;
            if (i < t.size() && non_ascii(i)) return i;
            continue;
          }
          ++i;  // the escaped character
        } else if (close.size() == 1 && t[i] == '\n') {
          break;  // unterminated: toml++ says so
        } else if (t.substr(i, close.size()) == close) {
          i += close.size();
          break;
        } else {
          ++i;
        }
      }
      prev = c;
      value_next = false;
      continue;
    }
    prev = c;
    if (c == '\n') {
      if (!in_array) value_next = false;
    } else if (c == '[') {
      open.push_back(value_next || in_array ? Open::kArray : Open::kHeader);
      value_next = open.back() == Open::kArray;
    } else if (c == '{') {
      open.push_back(Open::kInlineTable);
      value_next = false;
    } else if (c == ']' || c == '}') {
      if (!open.empty()) open.pop_back();
      value_next = false;
    } else if (c == ',') {
      value_next = in_array;
    } else if (c == '=') {
      value_next = true;
    } else if (c != '.' && value_next) {
      // A bare value: toml++ reads up to the next terminator, looking at every character.
      for (; i < t.size() && !blank(t[i]) &&
             std::string_view("\n]},#").find(t[i]) == std::string_view::npos;
           ++i) {
        if (non_ascii(i)) return i;
      }
      prev = t[i - 1];
      value_next = false;
      continue;
    }
    ++i;
  }
  return std::nullopt;
}
}  // namespace

namespace {

// Delivery must know where we listen, so that it never connects to itself.
void KnowOwnListeners(Config& c) {
  c.delivery.own_listeners.clear();
  for (const auto& l : c.server.listeners) c.delivery.own_listeners.push_back({l.address, l.port});
}

}  // namespace

Config Defaults() {
  Config c;
  c.server.hostname = DefaultHostname();
  KnowOwnListeners(c);
  return c;
}

tl::expected<Config, ConfigError> LoadString(std::string_view text, std::string_view source_name,
                                             const std::filesystem::path& base_dir,
                                             bool dkim_keys) {
  const std::string file(source_name);
  if (auto bad = NonAsciiOutsideStrings(text)) {
    return tl::unexpected(ConfigError{fmt::format(
        "{}:{}: syntax error: a non-ASCII character outside a quoted string or comment", file,
        1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(*bad), '\n'))});
  }
  toml::parse_result parsed = toml::parse(text, source_name);
  if (!parsed) {
    const auto& e = parsed.error();
    return tl::unexpected(ConfigError{
        fmt::format("{}:{}: syntax error: {}", file, e.source().begin.line, e.description())});
  }
  const toml::table& root = parsed.table();
  Config config = Defaults();
  config.source = file;
  Source source{file, base_dir, {}};

  // Every table is read, in this order, so that `config check` lists the problems of all.
  Reader top(root, "", source);
  top.OnlyKeys({"server",        "log",    "metrics",       "listener",   "access",  "auth",
                "sender_checks", "limits", "queue",         "dns",        "dane",    "delivery",
                "retry",         "routes", "sender_routes", "tls_policy", "mta_sts", "tls",
                "tls_rpt",       "quotas", "dkim",          "privacy",    "archive", "shaping"});
  auto& server = config.server;
  auto& delivery = config.delivery;
  if (auto r = top.Table("server")) ReadServer(*r, server);
  ReadListeners(root, source, server.listeners);
  if (auto r = top.Table("log")) ReadLog(*r, config.log);
  if (auto r = top.Table("metrics")) ReadMetrics(*r, config.metrics);
  if (auto r = top.Table("access")) ReadAccess(*r, server.trusted_networks);
  if (auto r = top.Table("auth")) ReadAuth(*r, server.auth);
  if (auto r = top.Table("sender_checks")) ReadSenderChecks(*r, server.sender_checks);
  if (auto r = top.Table("privacy")) ReadPrivacy(*r, server.privacy);
  if (auto r = top.Table("archive")) ReadArchive(*r, server.archive);
  if (auto r = top.Table("limits")) ReadLimits(*r, server.limits, delivery.max_hops);
  if (auto r = top.Table("quotas")) ReadQuotas(*r, server.quotas);
  if (auto r = top.Table("queue")) ReadQueue(*r, config.queue, delivery.keep_completed);
  if (auto r = top.Table("dns")) ReadDns(*r, config.dns);
  if (auto r = top.Table("dane")) ReadDane(*r, delivery);
  if (auto r = top.Table("mta_sts")) ReadMtaSts(*r, delivery.mta_sts);
  if (auto r = top.Table("tls_rpt")) ReadTlsRpt(*r, delivery.tls_rpt);
  if (auto r = top.Table("tls")) ReadTls(*r, delivery.mta_sts);
  if (auto r = top.Table("delivery")) ReadDelivery(*r, delivery);
  if (auto r = top.Table("retry")) ReadRetry(*r, delivery.retry);
  if (auto r = top.Table("shaping")) {
    ReadShaping(*r, source, delivery, root["delivery"]["max_per_destination"].node() != nullptr);
  }
  if (auto r = top.Table("routes")) ReadRoutes(*r, delivery);
  if (auto r = top.Table("sender_routes")) ReadSenderRoutes(*r, delivery);
  if (auto r = top.Table("tls_policy")) ReadTlsPolicy(*r, delivery);
  if (auto r = top.Table("dkim"))
    ReadDkim(*r, source, server.dkim, delivery.retry.max_lifetime, dkim_keys);

  if (source.errors.Count() > 0) return tl::unexpected(source.errors.Result());
  KnowOwnListeners(config);
  return config;
}

tl::expected<Config, ConfigError> LoadFile(const std::filesystem::path& path, bool dkim_keys) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return tl::unexpected(
        ConfigError{fmt::format("{}: cannot read configuration file", path.string())});
  }
  std::ostringstream text;
  text << in.rdbuf();
  return LoadString(text.str(), path.string(), path.parent_path(), dkim_keys);
}

std::filesystem::path DefaultConfigFile() { return DANERELAY_DEFAULT_CONFIG; }

tl::expected<Config, ConfigError> LoadFileOrDefaults(const std::filesystem::path& path,
                                                     bool dkim_keys) {
  if (!path.empty()) return LoadFile(path, dkim_keys);
  std::error_code ec;
  if (std::filesystem::exists(DefaultConfigFile(), ec)) {
    return LoadFile(DefaultConfigFile(), dkim_keys);
  }
  return Defaults();
}

std::vector<FileRead> FilesReadOnReload(const Config& config) {
  std::vector<FileRead> files;
  if (std::error_code ec; std::filesystem::is_regular_file(config.source, ec)) {
    files.push_back({"configuration file", config.source});
  }
  if (!config.server.auth.users_file.empty()) {
    files.push_back({"[auth] users_file", config.server.auth.users_file});
  }
  if (!config.server.sender_checks.allow_list.empty()) {
    files.push_back({"[sender_checks] allow_list", config.server.sender_checks.allow_list});
  }
  for (const auto& lo : config.server.listeners) {
    if (!lo.starttls && !lo.implicit_tls) continue;
    const std::string name = fmt::format("listener {}:{}", lo.address, lo.port);
    files.push_back({name + " cert_file", lo.tls.cert_file});
    files.push_back({name + " key_file", lo.tls.key_file});
  }
  if (!config.delivery.mta_sts.ca_file.empty()) {
    files.push_back({"[tls] ca_file", config.delivery.mta_sts.ca_file});
  }
  // Read by delivery at each connection, as the daemon's account.
  const auto tls_files = [&](const std::string& where, const relay::TlsSettings& tls) {
    if (tls.client_cert_file.empty()) return;
    files.push_back({where + " client_cert_file", tls.client_cert_file});
    files.push_back({where + " client_key_file", tls.client_key_file});
  };
  const auto& routes = config.delivery.routes;
  for (const auto* table : {&routes.by_domain, &routes.by_sender}) {
    for (const auto& [key, route] : *table) {
      const std::string where = fmt::format("route \"{}\"", key);
      if (route.auth) files.push_back({where + " password_file", route.auth->password_file});
      tls_files(where, route.tls);
    }
  }
  for (const auto& [key, tls] : routes.tls_policy) {
    tls_files(fmt::format("[tls_policy] \"{}\"", key), tls);
  }
  for (const auto& k : config.server.dkim.keys) {
    files.push_back(
        {fmt::format("[[dkim.key]] {}._domainkey.{} key_file", k.selector, k.domain), k.key_file});
  }
  return files;
}

std::vector<std::string> Unreadable(const std::vector<FileRead>& files) {
  std::vector<std::string> out;
  for (const auto& f : files) {
    // Opened, not access(2): that answers for the real uid, and ACLs and the like count too.
    const int fd = ::open(f.path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
      out.push_back(
          fmt::format("{} {}: cannot read: {}", f.what, f.path.string(), std::strerror(errno)));
    } else {
      ::close(fd);
    }
  }
  return out;
}

}  // namespace danerelay::config
