#include "tools/dane_check.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "dns/resolver.hpp"
#include "relay/outbound/next_hop.hpp"
#include "relay/outbound/smtp_client.hpp"

namespace danerelay::tools {
namespace {

using nlohmann::json;

std::string_view TlsName(relay::TlsRequirement t) {
  switch (t) {
    case relay::TlsRequirement::kMay:
      return "may (STARTTLS if offered, certificate not checked)";
    case relay::TlsRequirement::kEncrypt:
      return "encrypt (STARTTLS required, certificate not checked)";
    case relay::TlsRequirement::kDane:
      return "dane (STARTTLS required, certificate must match TLSA)";
  }
  return "none";
}

std::string TlsaText(const std::optional<dns::TlsaAnswer>& t) {
  if (!t) return "not looked up (MX or address records not secure)";
  std::string s(dns::ToString(t->dnssec));
  if (t->rcode == dns::Rcode::kFailed) return s + ", lookup failed: " + t->why;
  if (t->records.empty()) return s + ", no records";
  return s;
}

// Runs the whole check as one coroutine; fills `report` and returns the exit status.
asio::awaitable<int> Check(const config::Config& cfg, const std::string& domain, bool mandatory,
                           dns::Resolver& resolver, std::shared_ptr<asio::ssl::context> tls_ctx,
                           json& report) {
  // The daemon's options as they are, [routes] included: the check decides as delivery would.
  const relay::DeliveryOptions& options = cfg.delivery;
  const bool is_mandatory = mandatory || relay::IsMandatory(options.mandatory_domains, domain);
  const relay::DaneMode mode =
      is_mandatory ? relay::DaneMode::kMandatory : relay::DaneMode::kOpportunistic;
  report["domain"] = domain;
  report["mode"] = is_mandatory ? "mandatory" : "opportunistic";
  std::mt19937 rng(0);
  const relay::NextHops hops = co_await relay::FindNextHops(resolver, domain, options, rng);
  report["hosts"] = json::array();
  if (hops.hosts.empty()) {
    report["verdict"] = hops.permanent ? "bounced" : "deferred";
    report["status"] = hops.status;
    report["reason"] = hops.reason;
    co_return hops.permanent ? 2 : 1;
  }
  for (const auto& hop : hops.hosts) {
    const relay::HostPlan plan = co_await relay::ResolveHost(resolver, hop);
    const relay::PolicyDecision decision = relay::Decide(mode, plan.facts);
    json h = {{"host", hop.name},
              {"port", hop.port},
              {"dnssec_mx", std::string(dns::ToString(hop.mx_dnssec))},
              {"dnssec_address", relay::DescribeAddress(plan.facts)},
              {"addresses", plan.addresses},
              {"tlsa_base", plan.tlsa_base},
              {"tlsa", TlsaText(plan.facts.tlsa)},
              {"tlsa_records", json::array()},
              {"policy_step", decision.step},
              {"policy", decision.reason},
              {"connections", json::array()}};
    if (plan.facts.tlsa) {
      for (const auto& r : plan.facts.tlsa->records) {
        h["tlsa_records"].push_back({{"record", r.ToString()}, {"usable", tls::UsableForSmtp(r)}});
      }
    }
    if (plan.no_address) {
      h["result"] = "deferred";
      h["reason"] = "no address records";
    } else if (decision.defer) {
      h["result"] = "deferred";
      h["status"] = decision.status;
      h["reason"] = decision.reason;
    } else {
      h["tls_requirement"] = std::string(TlsName(decision.tls));
      bool passed = false;
      for (const auto& ip : plan.addresses) {
        relay::ClientRequest req;
        req.ip = ip;
        req.port = hop.port;
        req.mx_host = hop.name;
        req.helo_name = cfg.server.hostname;
        req.tls = decision.tls;
        if (decision.tls == relay::TlsRequirement::kDane) {
          req.dane = relay::MakeDaneSetup(plan, hop, domain, decision);
        }
        req.tls_context = tls_ctx;
        req.timeouts = options.timeouts;
        req.timeouts.greeting = req.timeouts.command = std::chrono::seconds(30);
        relay::ClientResult r = co_await relay::DeliverOverSmtp(req);
        json c = {{"ip", ip}, {"starttls_offered", r.starttls_offered}, {"ok", !r.host_failed}};
        if (r.host_failed && r.retry_plaintext && decision.tls == relay::TlsRequirement::kMay) {
          // As delivery does under "may": a failed handshake is retried once in plain text.
          c["handshake_failed"] = r.reason;
          req.plaintext_only = true;
          r = co_await relay::DeliverOverSmtp(req);
          c["plaintext_retry"] = true;
          c["ok"] = !r.host_failed;
        }
        if (r.host_failed) {
          c["status"] = r.status;
          c["reason"] = r.reason;
        }
        if (r.verdict) {
          c["tls_verdict"] = std::string(tls::ToString(r.verdict->kind));
          c["tls"] = r.verdict->protocol;
          c["matched_tlsa"] = r.verdict->matched_tlsa;
          c["matched_depth"] = r.verdict->depth;
          c["verify_reason"] = r.verdict->reason;
          c["chain"] = json::array();
          for (const auto& cert : r.verdict->chain) {
            c["chain"].push_back({{"depth", cert.depth},
                                  {"subject", cert.subject},
                                  {"issuer", cert.issuer},
                                  {"spki_sha256", cert.spki_sha256},
                                  {"cert_sha256", cert.cert_sha256}});
          }
        }
        passed = passed || !r.host_failed;
        h["connections"].push_back(std::move(c));
      }
      h["result"] = passed ? "delivered" : "deferred";
    }
    const bool ok = h["result"] == "delivered";
    report["hosts"].push_back(std::move(h));
    if (ok) {
      report["verdict"] = "delivered";
      report["via"] = hop.name;
      co_return 0;  // delivery stops at the first host that takes the mail
    }
  }
  report["verdict"] = "deferred";
  co_return 1;
}

void PrintText(const json& r, std::ostream& out) {
  out << fmt::format("dane-check {} ({} DANE)\n", r["domain"].get<std::string>(),
                     r["mode"].get<std::string>());
  for (const auto& h : r["hosts"]) {
    out << fmt::format("\nMX host {}:{}  (MX RRset {}, addresses {})\n",
                       h["host"].get<std::string>(), h["port"].get<int>(),
                       h["dnssec_mx"].get<std::string>(), h["dnssec_address"].get<std::string>());
    for (const auto& a : h["addresses"]) out << "  address " << a.get<std::string>() << "\n";
    out << fmt::format("  TLSA _{}._tcp.{}: {}\n", h["port"].get<int>(),
                       h["tlsa_base"].get<std::string>(), h["tlsa"].get<std::string>());
    for (const auto& t : h["tlsa_records"]) {
      out << fmt::format("    {} {}\n", t["record"].get<std::string>(),
                         t["usable"].get<bool>() ? "(usable)" : "(not usable for SMTP)");
    }
    out << fmt::format("  policy (step {}): {}\n", h["policy_step"].get<int>(),
                       h["policy"].get<std::string>());
    if (h.contains("tls_requirement")) {
      out << "  TLS: " << h["tls_requirement"].get<std::string>() << "\n";
    }
    for (const auto& c : h["connections"]) {
      const std::string peer = fmt::format("{}[{}]:{}", h["host"].get<std::string>(),
                                           c["ip"].get<std::string>(), h["port"].get<int>());
      out << fmt::format("  {}: STARTTLS {}\n", peer,
                         c["starttls_offered"].get<bool>() ? "offered" : "not offered");
      if (c.contains("chain")) {
        for (const auto& cert : c["chain"]) {
          out << fmt::format("    depth={} subject={}\n      issuer={}\n", cert["depth"].get<int>(),
                             cert["subject"].get<std::string>(), cert["issuer"].get<std::string>());
          out << fmt::format("      pkey_fingerprint(sha256)={}\n      fingerprint(sha256)={}\n",
                             cert["spki_sha256"].get<std::string>(),
                             cert["cert_sha256"].get<std::string>());
        }
        const std::string matched = c["matched_tlsa"].get<std::string>();
        if (!matched.empty()) {
          out << fmt::format("    Matched DANE {} certificate at depth {}: {}\n",
                             matched[0] == '3' ? "EE" : "TA", c["matched_depth"].get<int>(),
                             matched);
        }
        out << fmt::format("    {} TLS connection established to {}: {}\n",
                           c["tls_verdict"].get<std::string>(), peer, c["tls"].get<std::string>());
        const std::string why = c["verify_reason"].get<std::string>();
        if (!why.empty()) out << "    certificate: " << why << "\n";
      }
      if (c.contains("reason")) {
        out << fmt::format("    failed: {} {}\n", c["status"].get<std::string>(),
                           c["reason"].get<std::string>());
      }
    }
    out << "  result: " << h["result"].get<std::string>();
    if (h.contains("reason") && !h.contains("tls_requirement")) {
      out << " (" << h["reason"].get<std::string>() << ")";
    }
    out << "\n";
  }
  out << "\nVerdict: mail to " << r["domain"].get<std::string>() << " would be "
      << r["verdict"].get<std::string>();
  if (r.contains("via")) out << " via " << r["via"].get<std::string>();
  if (r.contains("reason")) {
    out << " (" << r["status"].get<std::string>() << " " << r["reason"].get<std::string>() << ")";
  }
  out << "\n";
}

}  // namespace

// The longest a whole dane-check may take.
constexpr std::chrono::seconds kDaneCheckLimit(120);

int RunDaneCheck(const config::Config& cfg, const std::string& domain, bool mandatory,
                 bool json_out, std::ostream& out) {
  asio::io_context io(1);
  auto resolver = dns::Resolver::Create(io, cfg.dns);
  if (!resolver) {
    out << "dane-check: dns: " << resolver.error() << "\n";
    return 3;
  }
  auto tls_ctx = tls::MakeClientContext();
  if (!tls_ctx) {
    out << "dane-check: tls: " << tls_ctx.error() << "\n";
    return 3;
  }
  json report;
  int status = 3;
  // The check ends when its last lookup or probe does (each bounded by [dns] timeout and the
  // SMTP timeouts); the resolver's descriptor watch would keep the loop alive after that, so
  // the end stops it. The whole run is bounded as well.
  asio::steady_timer limit(io, kDaneCheckLimit);
  bool gave_up = false;
  limit.async_wait([&](std::error_code ec) {
    if (ec) return;
    gave_up = true;
    io.stop();
  });
  asio::co_spawn(io, Check(cfg, domain, mandatory, **resolver, *tls_ctx, report),
                 [&](std::exception_ptr e, int s) {
                   if (!e) status = s;
                   io.stop();
                 });
  io.run();
  if (gave_up) {
    out << fmt::format("dane-check: gave up after {}s without an answer for {}\n",
                       kDaneCheckLimit.count(), domain);
    return 3;
  }
  if (json_out) {
    out << report.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  } else if (!report.is_null()) {
    PrintText(report, out);
  }
  return status;
}

}  // namespace danerelay::tools
