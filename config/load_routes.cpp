// [routes], [sender_routes], [tls_policy], and the [delivery] keys a route can override
// (source address, EHLO name, address preference). relay/routes.hpp says what they mean.
#include <arpa/inet.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>

#include "config/load_tables.hpp"
#include "dns/idn.hpp"

namespace danerelay::config {
namespace {

using relay::Route;
using relay::TlsPolicy;
using relay::TlsSettings;

constexpr std::string_view kHopExample =
    "expected a next hop such as \"[smtp.example.net]:587\" (that host) or "
    "\"relay.example.net\" (its MX hosts)";

// A table key: "example.com", ".example.com" (its subdomains) or, with `star`, "*"; in A-labels.
std::optional<std::string> DomainKey(std::string_view key, bool star) {
  if (star && key == "*") return std::string(key);
  const bool dot = !key.empty() && key.front() == '.';
  const auto ascii = dns::ToAsciiDomain(key.substr(dot ? 1 : 0));
  if (!ascii || !ValidHostname(*ascii)) return std::nullopt;
  return (dot ? "." : "") + *ascii;
}

// The SHA-256 pin in lower-case hex without colons ("AB:CD:..." and "sha256:..." welcome).
std::optional<std::string> Pin(std::string v) {
  if (v.starts_with("sha256:")) v.erase(0, 7);
  std::erase(v, ':');
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  if (v.size() != 64 || v.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return std::nullopt;
  }
  return v;
}

void ReadHosts(Reader& r, std::string_view key, std::vector<relay::RouteHost>& out) {
  std::vector<std::string> texts;
  r.Strings(key, texts, [](const std::string& h) {
    return relay::ParseRoute(h) ? std::string() : "'" + h + "': " + std::string(kHopExample);
  });
  for (const auto& t : texts) out.push_back(*relay::ParseRoute(t));
}

// The file must exist, and hold no secret for anyone else: not readable by group or others.
void SecretFile(Reader& r, std::string_view key, const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    r.FailHere(key, fmt::format("'{}' is not a readable file", file.string()));
  } else if ((st.st_mode & (S_IRGRP | S_IROTH)) != 0) {
    r.FailHere(key,
               fmt::format("'{}' is readable by group or others (chmod 600 it)", file.string()));
  }
}

void ExistingFile(Reader& r, std::string_view key, const std::filesystem::path& file) {
  std::error_code ec;
  if (!file.empty() && !std::filesystem::is_regular_file(file, ec)) {
    r.FailHere(key, fmt::format("'{}' is not a readable file", file.string()));
  }
}

// tls, tls_names, fingerprints, implicit_tls, client_cert_file, client_key_file
void ReadTlsSettings(Reader& r, TlsSettings& tls, std::string_view policy_key) {
  std::string policy;
  r.String(policy_key, policy);
  if (r.Get(policy_key)) {
    if (auto p = relay::ParseTlsPolicy(policy)) {
      tls.policy = *p;
      tls.explicit_policy = true;
    } else {
      r.FailHere(policy_key,
                 "expected one of dane, dane-only, verify, fingerprint, encrypt, "
                 "may, none");
    }
  }
  r.Strings("tls_names", tls.names, [](const std::string& n) {
    return ValidHostname(n) || (n.starts_with("*.") && ValidHostname(n.substr(2)))
               ? std::string()
               : "'" + n + "' is not a host name";
  });
  std::vector<std::string> pins;
  r.Strings("fingerprints", pins, [](const std::string& p) {
    return Pin(p) ? std::string() : "'" + p + "' is not a SHA-256 fingerprint (64 hex digits)";
  });
  for (const auto& p : pins) tls.fingerprints.push_back(*Pin(p));
  r.Bool("implicit_tls", tls.implicit_tls);
  r.Path("client_cert_file", tls.client_cert_file);
  r.Path("client_key_file", tls.client_key_file);
  if (!r.Ok()) return;
  ExistingFile(r, "client_cert_file", tls.client_cert_file);
  ExistingFile(r, "client_key_file", tls.client_key_file);
  if (tls.client_cert_file.empty() != tls.client_key_file.empty()) {
    r.FailHere(tls.client_cert_file.empty() ? "client_key_file" : "client_cert_file",
               "client_cert_file and client_key_file go together");
  }
  if (tls.policy == TlsPolicy::kFingerprint && tls.fingerprints.empty()) {
    r.FailHere(policy_key, "tls = \"fingerprint\" needs fingerprints = [\"...\"]");
  }
  if (tls.policy == TlsPolicy::kNone && tls.implicit_tls) {
    r.FailHere("implicit_tls", "implicit_tls needs a TLS policy other than none");
  }
}

void ReadAuthTable(Reader& r, std::optional<relay::UpstreamAuth>& auth, const TlsSettings& tls) {
  auto t = r.Table("auth");
  if (!t) return;
  relay::UpstreamAuth a;
  t->OnlyKeys({"user", "password_file"});
  t->String("user", a.user);
  t->Path("password_file", a.password_file);
  if (t->Ok() && (a.user.empty() || a.password_file.empty())) {
    t->FailHere(a.user.empty() ? "user" : "password_file", "auth needs user and password_file");
  }
  r.Bool("allow_unverified_auth", a.allow_unverified);
  // Credentials go only where the policy authenticates the peer (DANE, verify, fingerprint),
  // or where the operator says in so many words that an unverified connection will do.
  const bool can_verify = Authenticates(tls.policy) || tls.policy == TlsPolicy::kDane ||
                          tls.policy == TlsPolicy::kDaneOnly;
  if (r.Ok() && !can_verify && !a.allow_unverified) {
    r.FailHere("auth", fmt::format("tls = \"{}\" never verifies the upstream: credentials would "
                                   "go to whoever answers; use verify, fingerprint or dane-only "
                                   "(or allow_unverified_auth = true)",
                                   relay::ToString(tls.policy)));
  }
  if (t->Ok() && r.Ok()) SecretFile(*t, "password_file", a.password_file);
  auth = std::move(a);
}

void ReadRouteTable(Reader& r, Route& route) {
  r.OnlyKeys({"hosts", "fallback", "tls", "tls_names", "fingerprints", "implicit_tls",
              "client_cert_file", "client_key_file", "auth", "allow_unverified_auth",
              "source_address", "source_address6", "ehlo_name", "address_preference",
              "address_families"});
  ReadHosts(r, "hosts", route.hosts);
  ReadHosts(r, "fallback", route.fallback);
  if (r.Ok() && route.hosts.empty()) r.FailHere("hosts", "a route needs at least one host");
  ReadTlsSettings(r, route.tls, "tls");
  ReadAuthTable(r, route.auth, route.tls);
  ReadSource(r, route.source);
}

// One entry of [routes] or [sender_routes]: a next hop string or a table.
std::optional<Route> ReadRoute(Reader& r, const std::string& key,
                               const relay::SourceOptions& source) {
  Route route;
  route.key = key;
  route.source = source;
  const toml::node* n = r.Get(key);
  if (n->is_table()) {
    if (auto t = r.Table(key)) ReadRouteTable(*t, route);
  } else {
    std::string hop;
    r.String(key, hop);
    if (!r.Ok()) return std::nullopt;
    auto host = relay::ParseRoute(hop);
    if (!host) {
      r.FailHere(key, kHopExample);
      return std::nullopt;
    }
    route.hosts.push_back(*host);
  }
  if (!r.Ok()) return std::nullopt;
  return route;
}

// Whether `key` ("example.com", ".example.com") names a domain under mandatory DANE.
bool Mandatory(const std::vector<std::string>& mandatory, const std::string& key) {
  const std::string bare = key.starts_with('.') ? key.substr(1) : key;
  return std::any_of(mandatory.begin(), mandatory.end(), [&](const std::string& m) {
    if (m == key || m == bare) return true;
    return m.starts_with('.') && (bare == m.substr(1) || bare.ends_with(m));
  });
}

void NotWeakened(Reader& r, const std::string& key, const TlsSettings& tls,
                 const std::vector<std::string>& mandatory) {
  if (tls.explicit_policy && tls.policy != TlsPolicy::kDane && tls.policy != TlsPolicy::kDaneOnly &&
      Mandatory(mandatory, key)) {
    r.FailHere(key, fmt::format("{} is in [dane] mandatory_domains; tls = \"{}\" would weaken it "
                                "(use dane or dane-only)",
                                key, relay::ToString(tls.policy)));
  }
}

}  // namespace

void ReadSource(Reader& r, relay::SourceOptions& source) {
  const auto address = [&](std::string_view key, std::string& out, bool v6) {
    r.String(key, out);
    if (!r.Get(key)) return;
    unsigned char buf[16];
    if (inet_pton(v6 ? AF_INET6 : AF_INET, out.c_str(), buf) != 1) {
      r.FailHere(key, v6 ? "expected an IPv6 address" : "expected an IPv4 address");
    }
  };
  address("source_address", source.address, false);
  address("source_address6", source.address6, true);
  r.String("ehlo_name", source.ehlo_name);
  if (r.Get("ehlo_name") && !ValidHostname(source.ehlo_name)) {
    r.FailHere("ehlo_name", "expected a host name such as \"mail.example.org\"");
  }
  std::string pref;
  r.String("address_preference", pref);
  if (r.Get("address_preference")) {
    if (auto p = relay::ParseAddressPreference(pref)) {
      source.preference = *p;
    } else {
      r.FailHere("address_preference", "expected \"any\", \"ipv4\" or \"ipv6\"");
    }
  }
  std::vector<std::string> families;
  r.Strings("address_families", families, [](const std::string& f) {
    return f == "ipv4" || f == "ipv6" ? std::string() : "'" + f + "': expected ipv4 or ipv6";
  });
  if (r.Get("address_families")) {
    source.ipv4 = std::find(families.begin(), families.end(), "ipv4") != families.end();
    source.ipv6 = std::find(families.begin(), families.end(), "ipv6") != families.end();
    if (!source.ipv4 && !source.ipv6) r.FailHere("address_families", "must not be empty");
  }
}

void ReadRoutes(Reader& r, relay::DeliveryOptions& delivery) {
  for (auto&& [k, v] : r.Entries()) {
    const std::string key(k.str());
    const auto domain = DomainKey(key, /*star=*/true);
    if (!domain) {
      r.FailHere(key,
                 "the key must be a domain (\"example.net\"), \".example.net\" for its "
                 "subdomains, or \"*\"");
      continue;
    }
    auto route = ReadRoute(r, key, delivery.source);
    if (!route) continue;
    NotWeakened(r, *domain, route->tls, delivery.mandatory_domains);
    route->key = *domain;
    delivery.routes.by_domain[*domain] = std::move(*route);
  }
}

// [sender_routes]: "user@example.com" or "@example.com" = a key of [routes], a next hop, or a
// route table of its own.
void ReadSenderRoutes(Reader& r, relay::DeliveryOptions& delivery) {
  auto& routes = delivery.routes;
  for (auto&& [k, v] : r.Entries()) {
    const std::string key = relay::LowerAscii(k.str());
    const auto at = key.find('@');
    if (at == std::string::npos || key.find('@', at + 1) != std::string::npos ||
        !ValidHostname(dns::ToAsciiDomain(key.substr(at + 1)).value_or(""))) {
      r.FailHere(k.str(), "the key must be \"user@example.com\" or \"@example.com\"");
      continue;
    }
    const std::string sender = key.substr(0, at + 1) + *dns::ToAsciiDomain(key.substr(at + 1));
    if (const auto* s = v.as_string()) {
      const auto named = DomainKey(s->get(), /*star=*/true);
      if (named && routes.by_domain.contains(*named)) {
        routes.by_sender[sender] = routes.by_domain.at(*named);
        routes.by_sender[sender].key = sender;
        continue;
      }
    }
    if (auto route = ReadRoute(r, std::string(k.str()), delivery.source)) {
      route->key = sender;
      routes.by_sender[sender] = std::move(*route);
    }
  }
}

// [tls_policy]: "example.com" or ".example.com" = "verify", or a table with tls = "...".
void ReadTlsPolicy(Reader& r, relay::DeliveryOptions& delivery) {
  for (auto&& [k, v] : r.Entries()) {
    const std::string key(k.str());
    const auto domain = DomainKey(key, /*star=*/false);
    if (!domain) {
      r.FailHere(key, "the key must be a domain (\"example.net\") or \".example.net\"");
      continue;
    }
    TlsSettings tls;
    if (v.is_table()) {
      auto t = r.Table(key);
      if (!t) continue;
      t->OnlyKeys({"tls", "tls_names", "fingerprints", "client_cert_file", "client_key_file"});
      ReadTlsSettings(*t, tls, "tls");
      if (t->Ok() && !t->Get("tls")) t->FailHere("tls", "missing: the policy for the domain");
    } else {
      std::string name;
      r.String(key, name);
      const auto policy = relay::ParseTlsPolicy(name);
      if (!r.Ok()) continue;
      if (!policy || *policy == TlsPolicy::kFingerprint) {
        r.FailHere(key, policy ? "fingerprint needs a table: { tls = \"fingerprint\", "
                                 "fingerprints = [\"...\"] }"
                               : "expected one of dane, dane-only, verify, fingerprint, "
                                 "encrypt, may, none");
        continue;
      }
      tls.policy = *policy;
      tls.explicit_policy = true;
    }
    if (!r.Ok()) continue;
    NotWeakened(r, *domain, tls, delivery.mandatory_domains);
    delivery.routes.tls_policy[*domain] = std::move(tls);
  }
}

}  // namespace danerelay::config
