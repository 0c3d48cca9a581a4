#include "relay/inbound/sending_quotas.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace danerelay::relay {
namespace {

using Kind = QuotaRule::Kind;

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view KindName(Kind k) {
  switch (k) {
    case Kind::kUser:
      return "user";
    case Kind::kClient:
      return "client";
    case Kind::kSender:
      return "sender";
    case Kind::kSenderDomain:
      return "sender_domain";
  }
  return "?";
}

// The rule of `kind` for `value`: its own, else "*".
const QuotaRule* Named(const QuotaOptions& o, Kind kind, const std::string& value) {
  const QuotaRule* any = nullptr;
  for (const auto& r : o.rules) {
    if (r.kind != kind) continue;
    if (r.match == value) return &r;
    if (r.match == "*") any = &r;
  }
  return any;
}

// The most specific client rule whose network holds `address`.
const QuotaRule* ForClient(const QuotaOptions& o, const std::string& address) {
  const QuotaRule* best = nullptr;
  for (const auto& r : o.rules) {
    if (r.kind != Kind::kClient || !r.network || !r.network->Contains(address)) continue;
    if (!best || r.network->prefix() > best->network->prefix()) best = &r;
  }
  return best;
}

}  // namespace

std::vector<SendingQuotas::Check> SendingQuotas::Applicable(const Sender& s, bool recipient) const {
  const std::string sender = Lower(s.sender);
  const auto at = sender.rfind('@');
  const std::string domain = at == std::string::npos ? "" : sender.substr(at + 1);
  std::vector<std::pair<const QuotaRule*, std::string>> rules;
  if (!s.user.empty()) rules.emplace_back(Named(options_, Kind::kUser, s.user), s.user);
  if (s.trusted) rules.emplace_back(ForClient(options_, s.address), s.address);
  if (!sender.empty()) rules.emplace_back(Named(options_, Kind::kSender, sender), sender);
  if (!domain.empty()) rules.emplace_back(Named(options_, Kind::kSenderDomain, domain), domain);
  std::vector<Check> out;
  for (const auto& [rule, value] : rules) {
    if (!rule) continue;
    const std::string key = fmt::format("{} {}", KindName(rule->kind), value);
    for (const auto& l : recipient ? rule->recipients : rule->messages) {
      out.push_back(
          {&l, std::string(KindName(rule->kind)), key,
           fmt::format("{} {}/{}s", key, recipient ? "recipients" : "messages", l.window.count())});
    }
  }
  return out;
}

SendingQuotas::Counter& SendingQuotas::At(const std::string& counter, std::chrono::seconds window,
                                          TimePoint now) {
  if (counters_.size() > 10000) {  // keys of past windows go, so the map cannot grow unbounded
    std::erase_if(counters_, [&](const auto& e) {
      return now - e.second.start >= std::chrono::hours(24 * 32);
    });
  }
  const auto since = now.time_since_epoch();
  const TimePoint start(since - since % std::chrono::duration_cast<TimePoint::duration>(window));
  Counter& c = counters_[counter];
  if (c.start != start) c = Counter{start, 0, false};
  return c;
}

std::optional<SendingQuotas::Refusal> SendingQuotas::Count(const Sender& s, bool recipient,
                                                           TimePoint now) {
  const std::vector<Check> checks = Applicable(s, recipient);
  for (const auto& ch : checks) {
    Counter& c = At(ch.counter, ch.limit->window, now);
    if (c.count + 1 > ch.limit->count) {
      const bool first = !std::exchange(c.warned, true);
      return Refusal{
          ch.kind, ch.key,
          fmt::format("{} {} per {}", ch.limit->count, recipient ? "recipients" : "messages",
                      ch.limit->text.substr(ch.limit->text.find('/') + 1)),
          first};
    }
  }
  for (const auto& ch : checks) {
    ++At(ch.counter, ch.limit->window, now).count;
    changed_.insert(ch.counter);
  }
  return std::nullopt;
}

std::vector<queue::Store::QuotaUsage> SendingQuotas::TakeChanged() {
  std::vector<queue::Store::QuotaUsage> out;
  for (const auto& key : changed_) {
    const auto it = counters_.find(key);
    if (it != counters_.end()) {
      out.push_back({key, it->second.start, static_cast<std::int64_t>(it->second.count)});
    }
  }
  changed_.clear();
  return out;
}

void SendingQuotas::Load(const std::vector<queue::Store::QuotaUsage>& rows, TimePoint now) {
  for (const auto& row : rows) {
    // The window's length is the counter's last word ("... messages/86400s").
    const auto slash = row.key.rfind('/');
    if (slash == std::string::npos) continue;
    const std::chrono::seconds window(std::atoll(row.key.c_str() + slash + 1));
    if (window.count() <= 0) continue;
    Counter& c = At(row.key, window, now);
    if (c.start != row.window_start) continue;  // a window that has passed
    c.count += static_cast<std::uint64_t>(row.count);
    changed_.insert(row.key);
  }
}

}  // namespace danerelay::relay
