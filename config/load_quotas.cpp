// [quotas]: sending quotas per AUTH user, trusted client address, sender address or sender
// domain (relay/inbound/sending_quotas.hpp):
//
//   [quotas.user]
//   "*" = { messages = "2000/h", recipients = ["10000/d", "500/10min"] }
//   [quotas.client]
//   "10.0.0.0/8" = { messages = "100/min" }
#include <cctype>
#include <charconv>

#include "config/load_tables.hpp"

namespace danerelay::config {

// "5/min", "2000/h", "10000/d", "5/10s": a count, then a window of [N]s|min|h|d.
std::optional<relay::QuotaLimit> ParseRate(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::uint64_t count = 0, n = 1;
  const std::string_view head = text.substr(0, slash);
  auto [end, ec] = std::from_chars(head.data(), head.data() + head.size(), count);
  if (ec != std::errc() || end != head.data() + head.size() || count == 0 || count > 1'000'000'000)
    return std::nullopt;
  std::string_view window = text.substr(slash + 1);
  if (!window.empty() && std::isdigit(static_cast<unsigned char>(window[0]))) {
    auto [wend, wec] = std::from_chars(window.data(), window.data() + window.size(), n);
    if (wec != std::errc() || n == 0 || n > 1'000'000) return std::nullopt;
    window.remove_prefix(static_cast<std::size_t>(wend - window.data()));
  }
  std::uint64_t unit = 0;
  if (window == "s") unit = 1;
  if (window == "min" || window == "m") unit = 60;
  if (window == "h") unit = 3600;
  if (window == "d") unit = 86400;
  if (unit == 0 || n * unit > 31 * 86400) return std::nullopt;
  return relay::QuotaLimit{count, std::chrono::seconds(n * unit), std::string(text)};
}

namespace {

using Kind = relay::QuotaRule::Kind;

// `messages` or `recipients` of one entry: a limit or an array of them.
void ReadLimits(Reader& r, std::string_view key, std::vector<relay::QuotaLimit>& out) {
  const toml::node* n = r.Get(key);
  if (!n) return;
  std::vector<const toml::node*> items;
  if (const toml::array* arr = n->as_array()) {
    for (const toml::node& item : *arr) items.push_back(&item);
  } else {
    items.push_back(n);
  }
  for (const toml::node* item : items) {
    std::optional<relay::QuotaLimit> limit;
    if (item->is_string()) limit = ParseRate(item->as_string()->get());
    if (!limit) {
      return r.Fail(*item, key,
                    "expected a quota such as \"2000/h\", \"10000/d\", \"5/min\" or \"5/10s\" "
                    "(a window of at most 31d), or an array of them");
    }
    out.push_back(std::move(*limit));
  }
}

// Why `name` cannot be a key of [quotas.<kind>], or "".
std::string BadName(Kind kind, const std::string& name, relay::QuotaRule& rule) {
  if (name.empty()) return "an empty name";
  if (kind == Kind::kClient) {
    std::string why;
    rule.network = relay::IpNetwork::Parse(name, &why);
    return rule.network ? "" : why;
  }
  if (name == "*") return "";
  const bool has_at = name.find('@') != std::string::npos;
  if (kind == Kind::kSender && !has_at) return "expected a sender address or \"*\"";
  if (kind == Kind::kSenderDomain && has_at) return "expected a domain or \"*\"";
  return "";
}

void ReadKind(Reader& r, std::string_view table, Kind kind, relay::QuotaOptions& out) {
  auto t = r.Table(table);
  if (!t) return;
  for (auto&& [k, v] : t->Entries()) {
    std::string name(k.str());
    relay::QuotaRule rule;
    rule.kind = kind;
    if (kind != Kind::kUser) {
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    rule.match = name;
    if (std::string why = BadName(kind, name, rule); !why.empty()) return t->Fail(v, name, why);
    auto entry = t->Table(k.str());
    if (!entry) return;
    entry->OnlyKeys({"messages", "recipients"});
    ReadLimits(*entry, "messages", rule.messages);
    ReadLimits(*entry, "recipients", rule.recipients);
    if (!entry->Ok()) return;
    if (rule.messages.empty() && rule.recipients.empty()) {
      return t->Fail(v, name, "expected messages or recipients (or both)");
    }
    out.rules.push_back(std::move(rule));
  }
}

}  // namespace

void ReadQuotas(Reader& r, relay::QuotaOptions& quotas) {
  r.OnlyKeys({"user", "client", "sender", "sender_domain"});
  quotas.rules.clear();
  ReadKind(r, "user", Kind::kUser, quotas);
  ReadKind(r, "client", Kind::kClient, quotas);
  ReadKind(r, "sender", Kind::kSender, quotas);
  ReadKind(r, "sender_domain", Kind::kSenderDomain, quotas);
}

}  // namespace danerelay::config
