// The tables of the daemon and its SMTP server: [server], [[listener]], [log], [metrics],
// [access], [auth], [sender_checks], [privacy], [limits].
#include <grp.h>
#include <pwd.h>
#include <strings.h>

#include <algorithm>
#include <array>

#include "config/load_tables.hpp"

namespace danerelay::config {
namespace {

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

}  // namespace

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

// [privacy]
void ReadPrivacy(Reader& r, relay::PrivacyOptions& p) {
  r.OnlyKeys({"hide_client", "remove_headers"});
  std::vector<std::string> hide;
  r.Strings("hide_client", hide, [](const std::string& s) {
    return s == "auth" || s == "trusted" ? "" : "expected \"auth\" or \"trusted\"";
  });
  p.hide_auth = std::count(hide.begin(), hide.end(), "auth") > 0;
  p.hide_trusted = std::count(hide.begin(), hide.end(), "trusted") > 0;
  r.Strings("remove_headers", p.remove_headers, [](const std::string& h) -> std::string {
    if (h.empty() || h.find_first_of(": \t\r\n") != std::string::npos) {
      return "expected a header field name";
    }
    // Hop counting (loop detection) and the signatures about to be made rely on these.
    for (const char* kept : {"received", "dkim-signature", "from"}) {
      if (strcasecmp(h.c_str(), kept) == 0) return "'" + h + "' cannot be removed";
    }
    return "";
  });
}

// [archive]: recipient, and "@domain" = address per envelope sender domain.
void ReadArchive(Reader& r, relay::ArchiveOptions& a) {
  const auto address = [](const std::string& s) -> std::string {
    const auto at = s.find('@');
    const bool ok = at != std::string::npos && at > 0 && at + 1 < s.size() &&
                    s.find_first_of(" \t<>\r\n") == std::string::npos &&
                    s.find('@', at + 1) == std::string::npos;
    return ok ? "" : "'" + s + "' is not an address";
  };
  for (auto&& [k, v] : r.Entries()) {
    const std::string key(k.str());
    std::string value;
    r.String(key, value);
    if (!r.Ok()) return;
    if (key != "recipient" && (key.size() < 2 || key[0] != '@' || !ValidHostname(key.substr(1)))) {
      return r.FailHere(key, "expected recipient or \"@domain\" (a sender domain)");
    }
    if (const std::string why = address(value); !why.empty()) return r.FailHere(key, why);
    if (key == "recipient") {
      a.recipient = value;
    } else {
      std::string domain = key.substr(1);
      for (char& c : domain) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      a.by_sender_domain[domain] = value;
    }
  }
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

}  // namespace danerelay::config
