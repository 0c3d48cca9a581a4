#include "config/config.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
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

#include "dns/idn.hpp"

namespace danerelay::config {
namespace {

std::string_view TypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    default:
      return "a date or time";
  }
}

// The problems found so far, for `config check` to list them all. True while the table being
// read has a problem: the checks guarded by it build on values read before (a port range on a
// port that was a string). Reader::Table starts the next table afresh.
class Errors {
 public:
  explicit operator bool() const { return in_table_; }
  Errors& operator=(ConfigError e) {
    in_table_ = true;
    all_.push_back(std::move(e.message));
    return *this;
  }
  void NextTable() { in_table_ = false; }
  std::size_t Count() const { return all_.size(); }
  ConfigError Result() const { return ConfigError{all_.front(), all_}; }

 private:
  bool in_table_ = false;
  std::vector<std::string> all_;
};

// What the readers of every table share: the file's name for messages, the directory relative
// paths start from, and the problems found so far.
struct Source {
  std::string file;
  std::filesystem::path base_dir;
  Errors errors;
};

// Reads one table of the schema. Each key's first problem is kept; the checks across keys
// (`Ok()`) run only while the table has none.
class Reader {
 public:
  Reader(const toml::table& table, std::string prefix, Source& source)
      : table_(table), prefix_(std::move(prefix)), source_(source) {}

  // The table `key` within this one ("server", or "senders" within [auth]), when present; the
  // problems of this table no longer hold back the checks of the next.
  std::optional<Reader> Table(std::string_view key) {
    source_.errors.NextTable();
    const toml::node* n = table_.get(key);
    if (!n) return std::nullopt;
    const std::string path = prefix_ + std::string(key);
    if (!n->is_table()) {
      source_.errors =
          ConfigError{fmt::format("{}:{}: {}: expected a table [{}], got {}", source_.file,
                                  n->source().begin.line, path, path, TypeName(*n))};
      return std::nullopt;
    }
    return Reader(*n->as_table(), path + ".", source_);
  }

  // False once this table has a problem.
  bool Ok() const { return !source_.errors; }

  void Fail(const toml::node& at, std::string_view key, std::string_view message) {
    source_.errors = ConfigError{fmt::format("{}:{}: {}{}: {}", source_.file,
                                             at.source().begin.line, prefix_, key, message)};
  }
  void FailHere(std::string_view key, std::string_view message) {
    const toml::node* n = table_.get(key);
    Fail(n ? *n : static_cast<const toml::node&>(table_), key, message);
  }

  // Every key in the table must be one of `known`.
  void OnlyKeys(std::initializer_list<std::string_view> known) {
    for (auto&& [k, v] : table_) {
      bool ok = false;
      for (auto name : known) ok = ok || k.str() == name;
      if (!ok) {
        source_.errors = ConfigError{fmt::format("{}:{}: {}{}: unknown key", source_.file,
                                                 k.source().begin.line, prefix_, k.str())};
      }
    }
  }

  const toml::table& Entries() const { return table_; }
  const toml::node* Get(std::string_view key) const { return table_.get(key); }

  void String(std::string_view key, std::string& out) {
    const toml::node* n = table_.get(key);
    if (!n) return;
    if (!n->is_string())
      return Fail(*n, key, fmt::format("expected a string, got {}", TypeName(*n)));
    out = n->as_string()->get();
  }

  void Bool(std::string_view key, bool& out) {
    const toml::node* n = table_.get(key);
    if (!n) return;
    if (!n->is_boolean()) {
      return Fail(*n, key, fmt::format("expected true or false, got {}", TypeName(*n)));
    }
    out = n->as_boolean()->get();
  }

  template <typename T>
  void Unsigned(std::string_view key, T& out, std::uint64_t min, std::uint64_t max) {
    const toml::node* n = table_.get(key);
    if (!n) return;
    if (!n->is_integer()) {
      return Fail(*n, key, fmt::format("expected an integer, got {}", TypeName(*n)));
    }
    const std::int64_t v = n->as_integer()->get();
    if (v < 0 || static_cast<std::uint64_t>(v) < min || static_cast<std::uint64_t>(v) > max) {
      return Fail(*n, key, fmt::format("{} is out of range ({}..{})", v, min, max));
    }
    out = static_cast<T>(v);
  }

  // Durations have an upper bound too: time arithmetic on the nanosecond clock overflows
  // beyond ~292 years, and "200000d" used to pass and expire the whole queue at once.
  void Duration(std::string_view key, std::chrono::seconds& out, std::chrono::seconds min,
                std::chrono::seconds max = std::chrono::hours(24 * 365)) {
    const toml::node* n = table_.get(key);
    if (!n) return;
    std::optional<std::chrono::seconds> d;
    if (n->is_integer() && n->as_integer()->get() >= 0) {
      d = std::chrono::seconds(n->as_integer()->get());
    } else if (n->is_string()) {
      d = ParseDuration(n->as_string()->get());
    } else if (!n->is_integer()) {
      return Fail(*n, key, fmt::format("expected a duration such as \"5m\", got {}", TypeName(*n)));
    }
    if (!d) {
      return Fail(*n, key, "expected a duration: a number with s, m, h or d (\"300s\", \"5m\")");
    }
    if (*d < min) return Fail(*n, key, fmt::format("must be at least {}s", min.count()));
    if (*d > max) {
      return Fail(*n, key,
                  fmt::format("must be at most {}d ({}s)", max.count() / 86400, max.count()));
    }
    out = *d;
  }

  // An array of strings, each checked by `check` (which returns "" or why it is wrong).
  template <typename Check>
  void Strings(std::string_view key, std::vector<std::string>& out, Check check) {
    const toml::node* n = table_.get(key);
    if (!n) return;
    const toml::array* arr = n->as_array();
    if (!arr)
      return Fail(*n, key, fmt::format("expected an array of strings, got {}", TypeName(*n)));
    std::vector<std::string> values;
    for (const toml::node& item : *arr) {
      if (!item.is_string()) {
        return Fail(item, key, fmt::format("expected a string, got {}", TypeName(item)));
      }
      std::string v = item.as_string()->get();
      if (std::string why = check(v); !why.empty()) return Fail(item, key, why);
      values.push_back(std::move(v));
    }
    out = std::move(values);
  }

  // A relative path is taken relative to the file's directory.
  void Path(std::string_view key, std::filesystem::path& out) {
    std::string s;
    const std::size_t before = source_.errors.Count();
    String(key, s);
    if (source_.errors.Count() != before || !table_.get(key)) return;
    if (s.empty()) return FailHere(key, "must not be empty");
    out = std::filesystem::path(s).is_relative() ? source_.base_dir / s : std::filesystem::path(s);
  }

 private:
  const toml::table& table_;
  std::string prefix_;
  Source& source_;
};

std::string DefaultHostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

// A hostname for the greeting and EHLO: letters, digits, hyphens and dots (RFC 5321 §2.3.5).
bool ValidHostname(std::string_view h) {
  if (h.empty() || h.size() > 253 || h.front() == '.' || h.back() == '.') return false;
  for (char c : h) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// [server]
void ReadServer(Reader& r, relay::ServerOptions& server) {
  r.OnlyKeys({"hostname", "user", "group"});
  r.String("hostname", server.hostname);
  if (r.Ok() && r.Get("hostname") && !ValidHostname(server.hostname)) {
    r.FailHere("hostname", "expected a host name such as \"relay.example.org\"");
  }
  // The account must exist now, so that `config check` finds a typo before a restart does.
  r.String("user", server.user);
  r.String("group", server.group);
  if (r.Ok() && r.Get("user") && getpwnam(server.user.c_str()) == nullptr) {
    r.FailHere("user", "no such user '" + server.user + "' on this system");
  }
  if (r.Ok() && r.Get("group") && getgrnam(server.group.c_str()) == nullptr) {
    r.FailHere("group", "no such group '" + server.group + "' on this system");
  }
  if (r.Ok() && !server.group.empty() && server.user.empty()) {
    r.FailHere("group", "group needs user");
  }
}

// One [[listener]].
void ReadListener(Reader& r, relay::ListenerOptions& out) {
  r.OnlyKeys({"address", "port", "starttls", "implicit_tls", "require_tls", "auth", "cert_file",
              "key_file"});
  r.String("address", out.address);
  if (r.Ok() && r.Get("address")) {
    std::string why;
    const bool ok = out.address.find('/') == std::string::npos &&
                    relay::IpNetwork::Parse(out.address, &why).has_value();
    if (!ok) r.FailHere("address", "expected an IP address such as \"127.0.0.1\" or \"::\"");
  }
  r.Unsigned("port", out.port, 1, 65535);
  r.Bool("starttls", out.starttls);
  r.Bool("implicit_tls", out.implicit_tls);
  r.Bool("require_tls", out.require_tls);
  r.Bool("auth", out.auth);
  r.Path("cert_file", out.tls.cert_file);
  r.Path("key_file", out.tls.key_file);
  const bool no_cert = out.tls.cert_file.empty() || out.tls.key_file.empty();
  if (!r.Ok()) return;
  if (out.starttls && no_cert) {
    r.FailHere("starttls", "STARTTLS needs cert_file and key_file");
  } else if (out.implicit_tls && no_cert) {
    r.FailHere("implicit_tls", "implicit TLS needs cert_file and key_file");
  } else if (out.implicit_tls && out.starttls) {
    r.FailHere("starttls", "starttls and implicit_tls exclude each other (TLS is already on)");
  } else if (out.require_tls && !out.starttls && !out.implicit_tls) {
    r.FailHere("require_tls", "require_tls needs starttls or implicit_tls");
  }
}

// [[listener]], all of them one table for the problems: reading stops at the first listener
// with one. Any [[listener]] replaces the default one.
void ReadListeners(const toml::table& root, Source& source,
                   std::vector<relay::ListenerOptions>& listeners) {
  source.errors.NextTable();
  const toml::node* n = root.get("listener");
  if (!n) return;
  const toml::array* arr = n->as_array();
  if (!arr || !arr->is_array_of_tables() || arr->empty()) {
    return Reader(root, "", source)
        .Fail(*n, "listener", "expected one or more [[listener]] tables");
  }
  listeners.clear();
  for (size_t i = 0; i < arr->size() && !source.errors; ++i) {
    relay::ListenerOptions lo;
    Reader r(*arr->get(i)->as_table(), fmt::format("listener[{}].", i), source);
    ReadListener(r, lo);
    listeners.push_back(std::move(lo));
  }
}

// [log]
void ReadLog(Reader& r, relay::LogOptions& log) {
  r.OnlyKeys({"level", "syslog", "syslog_facility"});
  std::string level;
  r.String("level", level);
  static constexpr std::array<std::string_view, 4> kLevels = {"debug", "info", "warning", "error"};
  if (r.Ok() && r.Get("level")) {
    const auto it = std::find(kLevels.begin(), kLevels.end(), level);
    if (it == kLevels.end()) {
      r.FailHere("level", "expected \"debug\", \"info\", \"warning\" or \"error\"");
    } else {
      log.level = 1 + static_cast<int>(it - kLevels.begin());
    }
  }
  r.Bool("syslog", log.syslog);
  r.String("syslog_facility", log.syslog_facility);
  const std::string& f = log.syslog_facility;
  if (r.Ok() && f != "mail" && f != "daemon" &&
      !(f.size() == 6 && f.starts_with("local") && f[5] >= '0' && f[5] <= '7')) {
    r.FailHere("syslog_facility", "expected \"mail\", \"daemon\" or \"local0\"..\"local7\"");
  }
}

// [metrics]
void ReadMetrics(Reader& r, relay::MetricsOptions& metrics) {
  r.OnlyKeys({"address", "port"});
  r.String("address", metrics.address);
  r.Unsigned("port", metrics.port, 1, 65535);
  if (r.Ok() && !metrics.address.empty() &&
      (!relay::IpNetwork::Parse(metrics.address) ||
       metrics.address.find('/') != std::string::npos)) {
    r.FailHere("address", "expected an IP address such as \"127.0.0.1\"");
  }
}

// [access]
void ReadAccess(Reader& r, std::vector<relay::IpNetwork>& trusted_networks) {
  r.OnlyKeys({"trusted_networks"});
  const toml::node* n = r.Get("trusted_networks");
  if (!n || !r.Ok()) return;
  const toml::array* arr = n->as_array();
  if (!arr) {
    return r.Fail(*n, "trusted_networks",
                  fmt::format("expected an array of networks, got {}", TypeName(*n)));
  }
  trusted_networks.clear();
  for (const toml::node& item : *arr) {
    std::string why;
    std::optional<relay::IpNetwork> net;
    if (item.is_string()) net = relay::IpNetwork::Parse(item.as_string()->get(), &why);
    if (!item.is_string()) why = fmt::format("expected a string, got {}", TypeName(item));
    if (!net) return r.Fail(item, "trusted_networks", why);
    trusted_networks.push_back(*net);
  }
}

// [auth], and within it [auth.senders]: user -> the senders it may use.
void ReadAuth(Reader& r, relay::AuthOptions& auth) {
  r.OnlyKeys(
      {"users_file", "max_failures", "failure_window", "senders", "ipv4_prefix", "ipv6_prefix"});
  r.Path("users_file", auth.users_file);
  r.Unsigned("max_failures", auth.max_failures, 1, 1000);
  r.Duration("failure_window", auth.failure_window, std::chrono::seconds(1));
  r.Unsigned("ipv4_prefix", auth.ipv4_prefix, 8, 32);
  r.Unsigned("ipv6_prefix", auth.ipv6_prefix, 16, 128);
  auto senders = r.Table("senders");
  if (!senders) return;
  for (auto&& [k, v] : senders->Entries()) {
    const std::string user(k.str());
    std::vector<std::string> allowed;
    senders->Strings(user, allowed, [](const std::string& entry) -> std::string {
      const auto at = entry.find('@');
      if (at == std::string::npos || at + 1 == entry.size() || entry.find(' ') != entry.npos) {
        return "'" + entry + "' is not an address or \"@domain\"";
      }
      return "";
    });
    if (!senders->Ok()) break;
    auth.senders[user] = std::move(allowed);
  }
}

// [sender_checks]
void ReadSenderChecks(Reader& r, relay::SenderCheckOptions& sc) {
  r.OnlyKeys({"domain_exists", "reject_private_mx", "allow_list", "rhsbl", "exempt_trusted",
              "verify_domains", "verify_port"});
  r.Strings("verify_domains", sc.verify_domains, [](const std::string& d) -> std::string {
    return ValidHostname(d) ? "" : "'" + d + "' is not a domain";
  });
  r.Unsigned("verify_port", sc.verify_port, 1, 65535);
  r.Bool("domain_exists", sc.domain_exists);
  r.Bool("reject_private_mx", sc.reject_private_mx);
  r.Path("allow_list", sc.allow_list);
  r.Bool("exempt_trusted", sc.exempt_trusted);
  r.Strings("rhsbl", sc.rhsbl, [](const std::string& d) -> std::string {
    return ValidHostname(d) ? "" : "'" + d + "' is not a domain";
  });
}

// [limits]; max_hops is a limit of delivery.
void ReadLimits(Reader& r, relay::LimitsOptions& l, std::uint32_t& max_hops) {
  r.OnlyKeys({"max_message_size", "max_recipients", "max_connections", "max_connections_per_client",
              "max_untrusted_connections", "max_errors", "max_commands_without_mail",
              "command_timeout", "data_timeout", "max_inflight_bytes",
              "max_untrusted_connections_per_client", "client_ipv6_prefix", "max_connection_rate",
              "untrusted_auth_timeout", "min_data_rate", "max_hops"});
  r.Unsigned("max_message_size", l.max_message_size, 1024, std::uint64_t{1} << 31);
  r.Unsigned("max_recipients", l.max_recipients, 1, 100000);
  r.Unsigned("max_connections", l.max_connections, 1, 100000);
  r.Unsigned("max_connections_per_client", l.max_connections_per_client, 1, 100000);
  r.Unsigned("max_untrusted_connections", l.max_untrusted_connections, 0, 100000);
  r.Unsigned("max_errors", l.max_errors, 1, 1000);
  r.Unsigned("max_commands_without_mail", l.max_commands_without_mail, 10, 100000);
  r.Unsigned("max_inflight_bytes", l.max_inflight_bytes, 1024, std::uint64_t{1} << 40);
  r.Unsigned("max_hops", max_hops, 1, 1000);
  r.Duration("command_timeout", l.command_timeout, std::chrono::seconds(1));
  r.Duration("data_timeout", l.data_timeout, std::chrono::seconds(1));
  r.Unsigned("max_untrusted_connections_per_client", l.max_untrusted_connections_per_client, 1,
             100000);
  r.Unsigned("client_ipv6_prefix", l.client_ipv6_prefix, 16, 128);
  r.Unsigned("max_connection_rate", l.max_connection_rate, 0, 1000000);
  r.Duration("untrusted_auth_timeout", l.untrusted_auth_timeout, std::chrono::seconds(1));
  r.Unsigned("min_data_rate", l.min_data_rate, 0, 1u << 30);
  if (r.Ok() && l.max_inflight_bytes < l.max_message_size) {
    r.FailHere(r.Get("max_inflight_bytes") ? "max_inflight_bytes" : "max_message_size",
               "max_inflight_bytes must not be smaller than max_message_size");
  }
}

// [queue]; keep_completed is for delivery, which forgets finished messages.
void ReadQueue(Reader& r, queue::StoreOptions& store, std::chrono::seconds& keep_completed) {
  r.OnlyKeys({"path", "keep_completed"});
  r.Path("path", store.path);
  r.Duration("keep_completed", keep_completed, std::chrono::seconds(0));
}

// A [dns] forwarder: "IP" or "IP@port"; "" or why it is not.
std::string ForwarderProblem(const std::string& f) {
  const auto at = f.find('@');
  if (!relay::IpNetwork::Parse(f.substr(0, at)) || f.find('/') != std::string::npos) {
    return "'" + f + "' is not an IP address (optionally with @port)";
  }
  if (at != std::string::npos) {
    int port = 0;
    const std::string p = f.substr(at + 1);
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
    if (ec != std::errc() || end != p.data() + p.size() || port < 1 || port > 65535) {
      return "'" + f + "': the port after @ must be 1..65535";
    }
  }
  return "";
}

// [dns]
void ReadDns(Reader& r, dns::ResolverOptions& dns) {
  r.OnlyKeys({"trust_anchor_file", "forwarders", "root_hints", "timeout", "validation_canary",
              "bogus_canary", "health_interval", "on_validation_failure"});
  r.String("validation_canary", dns.validation_canary);
  r.String("bogus_canary", dns.bogus_canary);
  for (const char* key : {"validation_canary", "bogus_canary"}) {
    const std::string& v =
        std::string_view(key) == "validation_canary" ? dns.validation_canary : dns.bogus_canary;
    if (r.Ok() && r.Get(key) &&
        !(v == "." || v.empty() ||
          ValidHostname(v.back() == '.' ? v.substr(0, v.size() - 1) : v))) {
      r.FailHere(key, "expected \".\" or a domain name");
    }
  }
  r.Duration("health_interval", dns.health_interval, std::chrono::seconds(1));
  std::string on_failure = "defer";
  r.String("on_validation_failure", on_failure);
  if (r.Ok() && on_failure != "defer" && on_failure != "deliver") {
    r.FailHere("on_validation_failure", "expected \"defer\" or \"deliver\"");
  }
  dns.deliver_on_validation_failure = on_failure == "deliver";
  r.Path("trust_anchor_file", dns.trust_anchor_file);
  r.Path("root_hints", dns.root_hints);
  std::chrono::seconds timeout(15);
  r.Duration("timeout", timeout, std::chrono::seconds(1));
  dns.timeout = timeout;
  r.Strings("forwarders", dns.forwarders, ForwarderProblem);
}

// [dane]
void ReadDane(Reader& r, relay::DeliveryOptions& delivery) {
  r.OnlyKeys({"mandatory_domains", "testing_domains", "preflight_interval"});
  // U-labels are welcome ("bücher.example"); they are kept in the A-label form that delivery
  // compares with (IDNA2008).
  const auto domain_entry = [](const std::string& d) {
    const std::string bare = !d.empty() && d.front() == '.' ? d.substr(1) : d;
    const auto ascii = dns::ToAsciiDomain(bare);
    if (!ascii) return "'" + d + "' is " + ascii.error();
    return ValidHostname(*ascii)
               ? std::string()
               : "'" + d + "' is not a domain (\"example.org\" or \".example.org\")";
  };
  const auto to_ascii = [](std::vector<std::string>& entries) {
    for (auto& d : entries) {
      const bool dot = !d.empty() && d.front() == '.';
      d = (dot ? "." : "") + dns::ToAsciiDomain(dot ? d.substr(1) : d).value_or(d);
    }
  };
  r.Strings("mandatory_domains", delivery.mandatory_domains, domain_entry);
  r.Strings("testing_domains", delivery.testing_domains, domain_entry);
  to_ascii(delivery.mandatory_domains);
  to_ascii(delivery.testing_domains);
  r.Duration("preflight_interval", delivery.preflight_interval, std::chrono::seconds(0),
             std::chrono::hours(24 * 7));
}

// [mta_sts]
void ReadMtaSts(Reader& r, relay::MtaStsOptions& mta_sts) {
  r.OnlyKeys({"enabled", "https_port", "fetch_timeout", "allow_special_addresses"});
  r.Bool("enabled", mta_sts.enabled);
  r.Unsigned("https_port", mta_sts.https_port, 1, 65535);
  r.Duration("fetch_timeout", mta_sts.fetch_timeout, std::chrono::seconds(1),
             std::chrono::minutes(10));
  r.Bool("allow_special_addresses", mta_sts.allow_special_addresses);
}

// [tls_rpt]
void ReadTlsRpt(Reader& r, relay::TlsRptOptions& tls_rpt) {
  r.OnlyKeys({"enabled", "organization", "contact"});
  r.Bool("enabled", tls_rpt.enabled);
  r.String("organization", tls_rpt.organization);
  r.String("contact", tls_rpt.contact);
}

// [tls]: the WebPKI trust store, which only MTA-STS uses.
void ReadTls(Reader& r, relay::MtaStsOptions& mta_sts) {
  r.OnlyKeys({"ca_file"});
  std::filesystem::path ca;
  r.Path("ca_file", ca);
  if (r.Ok() && !ca.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(ca, ec)) {
      r.FailHere("ca_file", fmt::format("'{}' is not a readable file", ca.string()));
    }
    mta_sts.ca_file = ca.string();
  }
}

// [delivery]
void ReadDelivery(Reader& r, relay::DeliveryOptions& delivery) {
  r.OnlyKeys({"enabled", "port", "max_parallel", "max_per_destination", "connect_timeout",
              "postmaster", "max_mx_hosts", "max_addresses"});
  r.Unsigned("max_mx_hosts", delivery.max_mx_hosts, 1, 100);
  r.Unsigned("max_addresses", delivery.max_addresses, 1, 100);
  r.String("postmaster", delivery.postmaster);
  if (r.Ok() && !delivery.postmaster.empty() &&
      delivery.postmaster.find('@') == std::string::npos) {
    r.FailHere("postmaster", "expected an address such as \"postmaster@example.org\"");
  }
  r.Unsigned("max_per_destination", delivery.max_per_destination, 1, 10000);
  r.Bool("enabled", delivery.enabled);
  r.Unsigned("port", delivery.port, 1, 65535);
  r.Unsigned("max_parallel", delivery.max_parallel, 1, 10000);
  r.Duration("connect_timeout", delivery.timeouts.connect, std::chrono::seconds(1));
}

// [retry]
void ReadRetry(Reader& r, queue::RetryOptions& retry) {
  r.OnlyKeys({"min_backoff", "max_backoff", "max_lifetime", "delay_warning"});
  r.Duration("min_backoff", retry.min_backoff, std::chrono::seconds(1));
  r.Duration("max_backoff", retry.max_backoff, std::chrono::seconds(1));
  // Postfix caps maximal_queue_lifetime at 100 days; so do we, with an error instead.
  r.Duration("max_lifetime", retry.max_lifetime, std::chrono::seconds(1),
             std::chrono::hours(24 * 100));
  r.Duration("delay_warning", retry.delay_warning, std::chrono::seconds(0),
             std::chrono::hours(24 * 100));
  if (r.Ok() && retry.max_backoff < retry.min_backoff) {
    r.FailHere(r.Get("max_backoff") ? "max_backoff" : "min_backoff",
               "max_backoff must not be shorter than min_backoff");
  }
}

// [routes]: "domain" = "next hop", the domain kept in its A-label form.
void ReadRoutes(Reader& r, std::map<std::string, std::string>& routes) {
  for (auto&& [k, v] : r.Entries()) {
    const std::string domain(k.str());
    std::string hop;
    r.String(domain, hop);
    if (!r.Ok()) break;
    const std::string ascii = dns::ToAsciiDomain(domain).value_or("");
    if (!ValidHostname(ascii)) {
      r.FailHere(domain, "the key must be a domain such as \"example.net\"");
    } else if (!relay::ParseRoute(hop)) {
      r.FailHere(domain, "expected a next hop such as \"[mx.example.net]:25\" or \"[192.0.2.1]\"");
    } else {
      routes[ascii] = hop;
    }
  }
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
                                             const std::filesystem::path& base_dir) {
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
  top.OnlyKeys({"server", "log", "metrics", "listener", "access", "auth", "sender_checks", "limits",
                "queue", "dns", "dane", "delivery", "retry", "routes", "mta_sts", "tls",
                "tls_rpt"});
  auto& server = config.server;
  auto& delivery = config.delivery;
  if (auto r = top.Table("server")) ReadServer(*r, server);
  ReadListeners(root, source, server.listeners);
  if (auto r = top.Table("log")) ReadLog(*r, config.log);
  if (auto r = top.Table("metrics")) ReadMetrics(*r, config.metrics);
  if (auto r = top.Table("access")) ReadAccess(*r, server.trusted_networks);
  if (auto r = top.Table("auth")) ReadAuth(*r, server.auth);
  if (auto r = top.Table("sender_checks")) ReadSenderChecks(*r, server.sender_checks);
  if (auto r = top.Table("limits")) ReadLimits(*r, server.limits, delivery.max_hops);
  if (auto r = top.Table("queue")) ReadQueue(*r, config.queue, delivery.keep_completed);
  if (auto r = top.Table("dns")) ReadDns(*r, config.dns);
  if (auto r = top.Table("dane")) ReadDane(*r, delivery);
  if (auto r = top.Table("mta_sts")) ReadMtaSts(*r, delivery.mta_sts);
  if (auto r = top.Table("tls_rpt")) ReadTlsRpt(*r, delivery.tls_rpt);
  if (auto r = top.Table("tls")) ReadTls(*r, delivery.mta_sts);
  if (auto r = top.Table("delivery")) ReadDelivery(*r, delivery);
  if (auto r = top.Table("retry")) ReadRetry(*r, delivery.retry);
  if (auto r = top.Table("routes")) ReadRoutes(*r, delivery.routes);

  if (source.errors.Count() > 0) return tl::unexpected(source.errors.Result());
  KnowOwnListeners(config);
  return config;
}

tl::expected<Config, ConfigError> LoadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return tl::unexpected(
        ConfigError{fmt::format("{}: cannot read configuration file", path.string())});
  }
  std::ostringstream text;
  text << in.rdbuf();
  return LoadString(text.str(), path.string(), path.parent_path());
}

std::filesystem::path DefaultConfigFile() { return DANERELAY_DEFAULT_CONFIG; }

tl::expected<Config, ConfigError> LoadFileOrDefaults(const std::filesystem::path& path) {
  if (!path.empty()) return LoadFile(path);
  std::error_code ec;
  if (std::filesystem::exists(DefaultConfigFile(), ec)) return LoadFile(DefaultConfigFile());
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
