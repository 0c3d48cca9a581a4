// [dkim] and its [[dkim.key]] tables (relay/dkim/options.hpp). Every key file is loaded here,
// so `config check` and a reload refuse a weak or unreadable key with its file, line and key.
#include <fmt/format.h>

#include <algorithm>

#include "config/load_tables.hpp"
#include "dns/idn.hpp"
#include "relay/dkim/key.hpp"

namespace danerelay::config {
namespace {

// A domain as d= names it: lower case, A-labels (a U-label name is converted), no final dot.
std::string AsciiDomain(Reader& r, const char* key, std::string name) {
  while (!name.empty() && name.back() == '.') name.pop_back();
  auto ascii = dns::ToAsciiDomain(name);
  if (r.Ok() && (!ascii || !ValidHostname(*ascii))) {
    r.FailHere(key,
               fmt::format("'{}' is not a domain name{}", name, ascii ? "" : ": " + ascii.error()));
    return name;
  }
  return ascii ? *ascii : name;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// One [[dkim.key]]: domain, selector, key_file; the key must load.
void ReadDkimKey(Reader& r, relay::DkimKeyOptions& key, bool load) {
  r.OnlyKeys({"domain", "selector", "key_file"});
  for (const char* k : {"domain", "selector", "key_file"}) {
    if (r.Ok() && !r.Get(k)) r.FailHere(k, "is required");
  }
  r.String("domain", key.domain);
  key.domain = AsciiDomain(r, "domain", key.domain);
  r.String("selector", key.selector);
  // RFC 6376 §3.1: a selector is one or more dot-separated labels.
  if (r.Ok() && !ValidHostname(key.selector)) r.FailHere("selector", "expected a selector");
  r.Path("key_file", key.key_file);
  if (!r.Ok() || !load) return;
  if (auto loaded = relay::dkim::LoadKey(key.key_file); !loaded) {
    r.FailHere("key_file", loaded.error());
  }
}

void ReadDkimKeys(Reader& r, Source& source, std::vector<relay::DkimKeyOptions>& keys, bool load) {
  const toml::node* n = r.Get("key");
  if (!n || !r.Ok()) return;
  const toml::array* arr = n->as_array();
  if (!arr || !arr->is_array_of_tables()) {
    return r.Fail(*n, "key", "expected one or more [[dkim.key]] tables");
  }
  for (size_t i = 0; i < arr->size(); ++i) {
    relay::DkimKeyOptions key;
    Reader kr(*arr->get(i)->as_table(), fmt::format("dkim.key[{}].", i), source);
    ReadDkimKey(kr, key, load);
    // Two tables for one selector would sign twice with what DNS can hold only once.
    const bool twice = std::any_of(keys.begin(), keys.end(), [&](const auto& k) {
      return k.domain == key.domain && k.selector == key.selector;
    });
    if (kr.Ok() && twice) {
      kr.FailHere("selector",
                  fmt::format("{}._domainkey.{} is configured twice", key.selector, key.domain));
    }
    keys.push_back(std::move(key));
  }
}

void ReadSources(Reader& r, relay::DkimOptions& dkim) {
  std::vector<std::string> sources;
  r.Strings("sources", sources, [](const std::string& s) {
    return s == "auth" || s == "trusted" ? "" : "expected \"auth\" or \"trusted\"";
  });
  if (r.Get("sources") && r.Ok()) {
    dkim.sign_auth = std::count(sources.begin(), sources.end(), "auth") > 0;
    dkim.sign_trusted = std::count(sources.begin(), sources.end(), "trusted") > 0;
  }
  std::vector<std::string> nets;
  r.Strings("trusted_sources", nets, [](const std::string& s) {
    std::string why;
    return relay::IpNetwork::Parse(s, &why) ? std::string() : why;
  });
  for (const auto& s : nets) dkim.trusted_sources.push_back(*relay::IpNetwork::Parse(s));
  if (r.Ok() && !nets.empty() && !dkim.sign_trusted) {
    r.FailHere("trusted_sources", "needs \"trusted\" in sources");
  }
}

}  // namespace

// [dkim]
void ReadDkim(Reader& r, Source& source, relay::DkimOptions& dkim,
              std::chrono::seconds max_lifetime, bool load_keys) {
  r.OnlyKeys({"key", "sources", "trusted_sources", "sign_subdomains", "headers", "expire",
              "notices_domain"});
  ReadSources(r, dkim);
  r.Bool("sign_subdomains", dkim.sign_subdomains);
  // Letters, digits and hyphens: every field name in use, and nothing that libopendkim's
  // pattern matching of these names would read as a pattern.
  r.Strings("headers", dkim.headers, [](const std::string& h) -> std::string {
    const bool ok = !h.empty() && h.size() <= 64 && std::all_of(h.begin(), h.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '-';
    });
    return ok ? "" : "'" + h + "' is not a header field name (letters, digits, hyphens)";
  });
  if (r.Ok() && r.Get("headers") && dkim.headers.empty()) {
    r.FailHere("headers", "is empty; leave it out for the default list");
  }
  const bool has_from = std::any_of(dkim.headers.begin(), dkim.headers.end(),
                                    [](const auto& h) { return Lower(h) == "from"; });
  if (r.Ok() && !dkim.headers.empty() && !has_from) {
    r.FailHere("headers", "must include From (RFC 6376 §5.4)");
  }
  r.Duration("expire", dkim.expire, std::chrono::seconds(1));
  if (r.Ok() && r.Get("expire") && dkim.expire <= max_lifetime) {
    r.FailHere("expire", fmt::format("must outlive [retry] max_lifetime ({}s): a retry would send "
                                     "an expired signature",
                                     max_lifetime.count()));
  }
  r.String("notices_domain", dkim.notices_domain);
  if (r.Get("notices_domain"))
    dkim.notices_domain = AsciiDomain(r, "notices_domain", dkim.notices_domain);
  ReadDkimKeys(r, source, dkim.keys, load_keys);
}

}  // namespace danerelay::config
