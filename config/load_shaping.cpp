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

}  // namespace

void ReadShaping(Reader& r, Source& source, relay::DeliveryOptions& delivery,
                 bool max_per_destination_set) {
  r.OnlyKeys({"default", "on_reply"});
  ReadReplyRules(r, source, delivery.on_reply);
  auto d = r.Table("default");
  if (!d) return;
  d->OnlyKeys({"messages_per_connection", "connections", "dead_after", "dead_for"});
  d->Unsigned("dead_after", delivery.dead_after, 0, 1000);
  d->Duration("dead_for", delivery.dead_for, std::chrono::seconds(1), std::chrono::hours(24));
  d->Unsigned("messages_per_connection", delivery.messages_per_connection, 1, 100000);
  if (d->Get("connections") && max_per_destination_set) {
    return d->FailHere("connections",
                       "[delivery] max_per_destination (its old name) is set too: keep one");
  }
  d->Unsigned("connections", delivery.max_per_destination, 1, 10000);
}

}  // namespace danerelay::config
