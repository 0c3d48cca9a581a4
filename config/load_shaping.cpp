// [shaping]: how mail goes out to each site (relay/delivery/sites.hpp: the MX host set, route
// or provider a delivery goes to), issue 26:
//
//   [shaping.default]
//   connections = 20               # [delivery] max_per_destination, its old name: one of them
//   messages_per_connection = 100
//   message_rate = "600/h"         # none by default
//   connection_rate = "60/min"     # new connections; none by default
//   dead_after = 10                # connection failures in a row; 0: never
//   dead_for = "5m"                # then suspended that long, then one delivery probes
//
//   [shaping.site."google"]         # connections, messages_per_connection, the two rates
//   [shaping.domain."example.org"]  # message_rate
//   [shaping.providers]             # NAME = [".mx.suffix", ...]: one site
//
//   [[shaping.on_reply]]            # before the shipped rules (relay/reply_rules.hpp)
//   match = "^421 4\\.7\\.28 "
//   suspend = "30m"                # or: connections = 1 with for = "30m"
#include <cctype>

#include "config/load_tables.hpp"

namespace danerelay::config {
namespace {

void ReadReplyRule(Reader& r, relay::ReplyRule& rule) {
  r.OnlyKeys({"match", "suspend", "connections", "for"});
  if (!r.Get("match")) return r.FailHere("match", "missing: a regular expression over the reply");
  const bool lower = r.Get("connections") != nullptr;
  if (lower == (r.Get("suspend") != nullptr)) {
    return r.FailHere(lower ? "suspend" : "match",
                      lower ? "give either suspend or connections, not both"
                            : "missing: suspend = \"30m\", or connections = 1 with for = \"30m\"");
  }
  if (lower && !r.Get("for")) {
    return r.FailHere("connections", "missing: for = \"30m\", how long the lower limit holds");
  }
  if (!lower && r.Get("for")) return r.FailHere("for", "only with connections");
  r.String("match", rule.match);
  if (r.Ok()) {
    if (std::string why = relay::CheckReplyPattern(rule.match); !why.empty()) {
      r.FailHere("match", why);
    }
  }
  if (lower) {
    r.Unsigned("connections", rule.connections, 1, 10000);
    r.Duration("for", rule.lower_for, std::chrono::seconds(1), std::chrono::hours(24 * 7));
  } else {
    r.Duration("suspend", rule.suspend, std::chrono::seconds(0), std::chrono::hours(24 * 7));
  }
}

void ReadReplyRules(Reader& r, Source& source, std::vector<relay::ReplyRule>& rules) {
  const toml::node* n = r.Get("on_reply");
  if (!n) return;
  const toml::array* arr = n->as_array();
  if (!arr || !arr->is_array_of_tables()) {
    return r.Fail(*n, "on_reply", "expected one or more [[shaping.on_reply]] tables");
  }
  for (size_t i = 0; i < arr->size(); ++i) {
    relay::ReplyRule rule;
    Reader rr(*arr->get(i)->as_table(), fmt::format("shaping.on_reply[{}].", i), source);
    ReadReplyRule(rr, rule);
    rules.push_back(std::move(rule));
  }
}

// message_rate or connection_rate (`key`) of a [shaping] table.
std::optional<relay::QuotaLimit> ReadRate(Reader& r, const char* key = "message_rate") {
  const toml::node* n = r.Get(key);
  if (!n) return std::nullopt;
  std::optional<relay::QuotaLimit> rate;
  if (n->is_string()) rate = ParseRate(n->as_string()->get());
  if (!rate) {
    r.Fail(*n, key,
           "expected a rate such as \"600/h\", \"60/min\" or \"5/10s\" (a window of at most 31d)");
  }
  return rate;
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// [shaping.domain."example.org"] or [shaping.site."google"] (`what`): calls `read` with the
// reader of each entry and its name (lower case).
template <typename Read>
void ReadOverrides(Reader& r, Source& source, const char* what, Read read) {
  auto table = r.Table(what);
  if (!table) return;
  for (auto&& [key, node] : table->Entries()) {
    const std::string name = Lower(std::string(key.str()));
    const toml::table* t = node.as_table();
    if (!t) return table->Fail(node, name, "expected a table of shaping settings");
    Reader d(*t, fmt::format("shaping.{}.{}.", what, name), source);
    read(d, name);
    if (!d.Ok()) return;
  }
}

// [shaping.domain."D"]: a recipient domain's own message_rate (its connections are its site's).
void ReadDomains(Reader& r, Source& source, std::map<std::string, relay::QuotaLimit>& rates) {
  ReadOverrides(r, source, "domain", [&](Reader& d, const std::string& name) {
    d.OnlyKeys({"message_rate"});
    if (!ValidHostname(name)) {
      return d.FailHere("message_rate", fmt::format("'{}' is not a domain", name));
    }
    if (auto rate = ReadRate(d)) rates[name] = *rate;
  });
}

// [shaping.site."S"]: connections, messages_per_connection, message_rate and connection_rate of
// one site.
void ReadSites(Reader& r, Source& source,
               std::map<std::string, relay::DeliveryOptions::SiteShaping>& sites) {
  ReadOverrides(r, source, "site", [&](Reader& d, const std::string& name) {
    d.OnlyKeys({"connections", "messages_per_connection", "message_rate", "connection_rate"});
    if (name.empty() || name.size() > 1000) {
      return d.FailHere("connections", fmt::format("'{}' is not a site", name));
    }
    auto& site = sites[name];
    site.message_rate = ReadRate(d);
    site.connection_rate = ReadRate(d, "connection_rate");
    if (d.Get("connections")) {
      std::uint32_t n = 0;
      d.Unsigned("connections", n, 1, 10000);
      site.connections = n;
    }
    if (d.Get("messages_per_connection")) {
      std::uint32_t n = 0;
      d.Unsigned("messages_per_connection", n, 1, 100000);
      site.messages_per_connection = n;
    }
  });
}

// [shaping.providers]: NAME = [".suffix", ...].
void ReadProviders(Reader& r, std::vector<relay::SiteProvider>& providers) {
  auto table = r.Table("providers");
  if (!table) return;
  for (auto&& [key, node] : table->Entries()) {
    relay::SiteProvider p{Lower(std::string(key.str())), {}};
    table->Strings(std::string(key.str()), p.suffixes, [](const std::string& s) -> std::string {
      const bool ok = s.size() > 1 && s.front() == '.' && ValidHostname(s.substr(1));
      return ok ? "" : "'" + s + "' is not a suffix such as \".mail.protection.outlook.com\"";
    });
    if (!table->Ok()) return;
    for (auto& s : p.suffixes) s = Lower(s);
    providers.push_back(std::move(p));
  }
}

}  // namespace

void ReadShaping(Reader& r, Source& source, relay::DeliveryOptions& delivery,
                 bool max_per_destination_set) {
  r.OnlyKeys({"default", "domain", "site", "providers", "on_reply"});
  ReadReplyRules(r, source, delivery.on_reply);
  ReadDomains(r, source, delivery.message_rate_by_domain);
  ReadSites(r, source, delivery.site_shaping);
  ReadProviders(r, delivery.providers);
  auto d = r.Table("default");
  if (!d) return;
  d->OnlyKeys({"messages_per_connection", "connections", "dead_after", "dead_for", "message_rate",
               "connection_rate"});
  d->Unsigned("dead_after", delivery.dead_after, 0, 1000);
  d->Duration("dead_for", delivery.dead_for, std::chrono::seconds(1), std::chrono::hours(24));
  delivery.message_rate = ReadRate(*d);
  delivery.connection_rate = ReadRate(*d, "connection_rate");
  d->Unsigned("messages_per_connection", delivery.messages_per_connection, 1, 100000);
  if (d->Get("connections") && max_per_destination_set) {
    return d->FailHere("connections",
                       "[delivery] max_per_destination (its old name) is set too: keep one");
  }
  d->Unsigned("connections", delivery.max_per_destination, 1, 10000);
}

}  // namespace danerelay::config
