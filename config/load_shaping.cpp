// [shaping]: how mail goes out to each destination (issue 26). So far [shaping.default] only,
// which applies per recipient domain; sites (MX host sets), rates and per-site overrides are
// to come:
//
//   [shaping.default]
//   connections = 20               # [delivery] max_per_destination, its old name: one of them
//   messages_per_connection = 100
//   dead_after = 10                # connection failures in a row; 0: never
//   dead_for = "5m"                # then suspended that long, then one delivery probes
//
//   [[shaping.on_reply]]            # before the shipped rules (relay/reply_rules.hpp)
//   match = "^421 4\\.7\\.28 "
//   suspend = "30m"
#include <cctype>

#include "config/load_tables.hpp"

namespace danerelay::config {
namespace {

void ReadReplyRule(Reader& r, relay::ReplyRule& rule) {
  r.OnlyKeys({"match", "suspend"});
  if (!r.Get("match")) return r.FailHere("match", "missing: a regular expression over the reply");
  if (!r.Get("suspend")) return r.FailHere("suspend", "missing: a duration such as \"30m\"");
  r.String("match", rule.match);
  if (r.Ok()) {
    if (std::string why = relay::CheckReplyPattern(rule.match); !why.empty()) {
      r.FailHere("match", why);
    }
  }
  r.Duration("suspend", rule.suspend, std::chrono::seconds(0), std::chrono::hours(24 * 7));
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

// message_rate of a [shaping] table.
std::optional<relay::QuotaLimit> ReadRate(Reader& r) {
  const toml::node* n = r.Get("message_rate");
  if (!n) return std::nullopt;
  std::optional<relay::QuotaLimit> rate;
  if (n->is_string()) rate = ParseRate(n->as_string()->get());
  if (!rate) {
    r.Fail(*n, "message_rate",
           "expected a rate such as \"600/h\", \"60/min\" or \"5/10s\" (a window of at most 31d)");
  }
  return rate;
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// [shaping.domain."example.org"] or [shaping.site."google"] (`what`): what differs for one
// recipient domain or one site.
void ReadOverrides(Reader& r, Source& source, const char* what,
                   std::map<std::string, relay::QuotaLimit>& rates) {
  auto table = r.Table(what);
  if (!table) return;
  for (auto&& [key, node] : table->Entries()) {
    const std::string name = Lower(std::string(key.str()));
    const toml::table* t = node.as_table();
    if (!t) return table->Fail(node, name, "expected a table of shaping settings");
    Reader d(*t, fmt::format("shaping.{}.{}.", what, name), source);
    d.OnlyKeys({"message_rate"});
    const bool domain = std::string_view(what) == "domain";
    if (domain ? !ValidHostname(name) : name.empty() || name.size() > 1000) {
      return d.FailHere("message_rate", fmt::format("'{}' is not a {}", name, what));
    }
    if (auto rate = ReadRate(d)) rates[name] = *rate;
    if (!d.Ok()) return;
  }
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
  ReadOverrides(r, source, "domain", delivery.message_rate_by_domain);
  ReadOverrides(r, source, "site", delivery.message_rate_by_site);
  ReadProviders(r, delivery.providers);
  auto d = r.Table("default");
  if (!d) return;
  d->OnlyKeys({"messages_per_connection", "connections", "dead_after", "dead_for", "message_rate"});
  d->Unsigned("dead_after", delivery.dead_after, 0, 1000);
  d->Duration("dead_for", delivery.dead_for, std::chrono::seconds(1), std::chrono::hours(24));
  delivery.message_rate = ReadRate(*d);
  d->Unsigned("messages_per_connection", delivery.messages_per_connection, 1, 100000);
  if (d->Get("connections") && max_per_destination_set) {
    return d->FailHere("connections",
                       "[delivery] max_per_destination (its old name) is set too: keep one");
  }
  d->Unsigned("connections", delivery.max_per_destination, 1, 10000);
}

}  // namespace danerelay::config
