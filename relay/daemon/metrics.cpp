#include "relay/daemon/metrics.hpp"

#include <fmt/format.h>

#include <array>
#include <initializer_list>

namespace danerelay::relay {
namespace {

struct Family {
  std::string_view name;
  std::string_view help;
  std::string_view label;  // the one label name, "" for none
  std::initializer_list<std::string_view> values;
};

// What an operator watches. DANE outcomes are per MX host attempt, following relay/DESIGN.md's
// table: DNS failure (step 1), insecure MX or address (2, 3), no TLSA (4), no usable TLSA (5),
// and for DANE hosts the handshake: verified, certificate mismatch, no STARTTLS.
const std::array<Family, 15> kFamilies = {{
    {"danerelay_messages_accepted_total", "Messages accepted and queued (250 after DATA).", "", {}},
    {"danerelay_smtpd_rejects_total",
     "Refusals by the SMTP server, by the command refused.",
     "command",
     {"CONNECT", "MAIL", "RCPT", "DATA", "END-OF-MESSAGE", "AUTH", "STARTTLS"}},
    {"danerelay_deliveries_total",
     "Delivery outcomes per recipient.",
     "outcome",
     {"sent", "deferred", "bounced", "expired"}},
    {"danerelay_suspensions_total",
     "Recipient domains the daemon suspended on its own: on_reply, a reply that matched a "
     "[[shaping.on_reply]] rule; dead, connection failures in a row ([shaping.default] "
     "dead_after).",
     "origin",
     {"on_reply", "dead"}},
    {"danerelay_dane_total",
     "DANE outcomes per MX host tried (relay/DESIGN.md's table).",
     "outcome",
     {"verified", "mismatch", "no_starttls", "no_tlsa", "unusable_tlsa", "dns_failure",
      "insecure"}},
    {"danerelay_tls_verdicts_total",
     "TLS verdicts of delivery connections.",
     "verdict",
     {"Verified", "Trusted", "Untrusted", "Anonymous", "none"}},
    {"danerelay_notices_total",
     "Delivery status notifications queued.",
     "kind",
     {"bounce", "delay", "relayed", "postmaster"}},
    {"danerelay_smtpd_connections_total", "Client connections accepted.", "", {}},
    {"danerelay_dane_testing_would_defer_total",
     "MX hosts of [dane] testing_domains that mandatory DANE would have deferred (the mail went "
     "out under opportunistic DANE).",
     "",
     {}},
    {"danerelay_resolver_checks_total",
     "DNSSEC validation self-checks of the resolver, by result.",
     "result",
     {"ok", "failed"}},
    {"danerelay_tls_rpt_reports_total",
     "TLS-RPT reports (RFC 8460): queued as mail, posted over HTTPS, or not taken by HTTPS.",
     "outcome",
     {"mail_queued", "https_posted", "https_failed"}},
    {"danerelay_outcome_write_retries_total",
     "Writes of a delivery outcome tried again after a transient queue error (a full disk).",
     "",
     {}},
    {"danerelay_outcomes_not_recorded_total",
     "Delivery outcomes not written whole: the operator deleted the message or finished the "
     "recipient meanwhile, or the write failed (the recipients' states written alone).",
     "reason",
     {"deleted", "operator", "write_failed"}},
    {"danerelay_quota_rejects_total",
     "MAIL or RCPT commands refused with 450 4.7.1 by a sending quota ([quotas]), by its kind.",
     "kind",
     {"user", "client", "sender", "sender_domain"}},
    {"danerelay_dkim_total",
     "DKIM signing at acceptance (relay/dkim): signed, or why not.",
     "outcome",
     {"signed", "no_key", "not_source", "already_signed", "error"}},
}};

// Gauges: series come and go with what they describe.
struct Gauge {
  std::string_view name;
  std::string_view help;
};
const std::array<Gauge, 3> kGauges = {{
    {"danerelay_domain_suspended",
     "1 for each recipient domain suspended by the operator (danerelay queue suspend --domain); "
     "the series goes when the suspension ends."},
    {"danerelay_site_suspended",
     "1 for each site suspended: by the operator (danerelay queue suspend --site), on a "
     "throttling reply ([[shaping.on_reply]]) or as a dead destination; the series goes when the "
     "suspension ends."},
    {"danerelay_site_deliveries",
     "Deliveries under way to each site ([shaping] connections limits them); the series goes "
     "when none is."},
}};

}  // namespace

Metrics& Metrics::Get() {
  static Metrics metrics;
  return metrics;
}

Metrics::Metrics() {
  for (const auto& f : kFamilies) {
    auto& series = counters_[std::string(f.name)];
    if (f.values.size() == 0) series[""] = 0;
    for (auto v : f.values) series[fmt::format("{}=\"{}\"", f.label, v)] = 0;
  }
}

void Metrics::Add(std::string_view family, std::string_view labels, std::uint64_t n) {
  auto it = counters_.find(family);
  if (it == counters_.end())
    it = counters_.emplace(std::string(family), decltype(it->second){}).first;
  auto s = it->second.find(labels);
  if (s == it->second.end()) s = it->second.emplace(std::string(labels), 0).first;
  s->second += n;
}

std::uint64_t Metrics::Value(std::string_view family, std::string_view labels) const {
  auto it = counters_.find(family);
  if (it == counters_.end()) return 0;
  auto s = it->second.find(labels);
  return s == it->second.end() ? 0 : s->second;
}

void Metrics::CountReject(std::string_view command) {
  for (const auto v : kFamilies[1].values) {
    if (v == command) {
      Add(kFamilies[1].name, fmt::format("command=\"{}\"", command));
      return;
    }
  }
  Add(kFamilies[1].name, "command=\"other\"");
}

void Metrics::SetGauge(std::string_view family, std::string_view labels, double value) {
  auto it = gauges_.find(family);
  if (it == gauges_.end()) it = gauges_.emplace(std::string(family), decltype(it->second){}).first;
  it->second.insert_or_assign(std::string(labels), value);
}

void Metrics::EraseGauge(std::string_view family, std::string_view labels) {
  auto it = gauges_.find(family);
  if (it == gauges_.end()) return;
  if (auto s = it->second.find(labels); s != it->second.end()) it->second.erase(s);
}

std::string Metrics::Render() const {
  std::string out;
  for (const auto& f : kFamilies) {
    out += fmt::format("# HELP {} {}\n# TYPE {} counter\n", f.name, f.help, f.name);
    const auto it = counters_.find(f.name);
    for (const auto& [labels, value] : it->second) {
      out += labels.empty() ? fmt::format("{} {}\n", f.name, value)
                            : fmt::format("{}{{{}}} {}\n", f.name, labels, value);
    }
  }
  for (const auto& g : kGauges) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n", g.name, g.help, g.name);
    const auto it = gauges_.find(g.name);
    if (it == gauges_.end()) continue;
    for (const auto& [labels, value] : it->second) {
      out += fmt::format("{}{{{}}} {}\n", g.name, labels, value);
    }
  }
  return out;
}

std::string LabelValue(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    out += c == '\n' ? 'n' : c;
  }
  return out;
}

}  // namespace danerelay::relay
