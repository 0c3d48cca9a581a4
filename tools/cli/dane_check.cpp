#include "tools/cli/dane_check.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "dns/resolver.hpp"
#include "relay/health/dane_probe.hpp"
#include "relay/policy/sts_policies.hpp"
#include "tls/client.hpp"

namespace danerelay::tools {
namespace {

using nlohmann::json;

std::string_view TlsName(tls::Requirement t) {
  switch (t) {
    case tls::Requirement::kMay:
      return "may (STARTTLS if offered, certificate not checked)";
    case tls::Requirement::kEncrypt:
      return "encrypt (STARTTLS required, certificate not checked)";
    case tls::Requirement::kDane:
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

json ToJson(const relay::ProbeConnection& c) {
  json j = {{"ip", c.ip}, {"starttls_offered", c.starttls_offered}, {"ok", c.ok}};
  if (!c.handshake_failed.empty()) {
    // As delivery does under "may": a failed handshake is retried once in plain text.
    j["handshake_failed"] = c.handshake_failed;
    j["plaintext_retry"] = true;
  }
  if (!c.ok) {
    j["status"] = c.status;
    j["reason"] = c.reason;
  }
  if (const auto& v = c.verdict) {
    j["tls_verdict"] = std::string(tls::ToString(v->kind));
    j["tls"] = v->protocol;
    j["matched_tlsa"] = v->matched_tlsa;
    j["matched_depth"] = v->depth;
    j["verify_reason"] = v->reason;
    j["chain"] = json::array();
    for (const auto& cert : v->chain) {
      j["chain"].push_back({{"depth", cert.depth},
                            {"subject", cert.subject},
                            {"issuer", cert.issuer},
                            {"spki_sha256", cert.spki_sha256},
                            {"cert_sha256", cert.cert_sha256}});
    }
  }
  return j;
}

json ToJson(const relay::ProbeHost& h) {
  const auto& plan = h.plan.dns;
  const auto& decision = h.plan.decision;
  json j = {{"host", h.hop.name},
            {"port", h.hop.port},
            {"dnssec_mx", std::string(dns::ToString(h.hop.mx_dnssec))},
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
      j["tlsa_records"].push_back({{"record", r.ToString()}, {"usable", tls::UsableForSmtp(r)}});
    }
  }
  if (h.sts_checked) {
    j["mta_sts"] = h.plan.dane_applies     ? "DANE applies"
                   : h.plan.sts_mx_allowed ? "the MX host matches the policy"
                                           : "the MX host does not match the policy";
  }
  if (h.plan.skip) {
    j["status"] = h.status;
    j["reason"] = h.reason;
  } else {
    j["tls_requirement"] = std::string(TlsName(decision.tls));
  }
  for (const auto& c : h.connections) j["connections"].push_back(ToJson(c));
  j["result"] = h.delivered ? "delivered" : "deferred";
  return j;
}

// The report as `dane-check --json` prints it (and the text form reads it).
json ToJson(const relay::ProbeReport& r) {
  static constexpr const char* kVerdicts[] = {"delivered", "deferred", "bounced"};
  json j = {{"domain", r.domain},
            {"mode", r.mandatory ? "mandatory" : "opportunistic"},
            {"hosts", json::array()},
            {"tls_policy", r.tls_policy},
            {"verdict", kVerdicts[relay::ExitStatus(r)]}};
  if (!r.route.empty()) j["route"] = r.route;
  if (r.mta_sts) {
    const relay::StsLookup& look = *r.mta_sts;
    json s = {{"problem", look.problem}, {"cached", look.cached}};
    if (look.policy) {
      s["id"] = look.policy->id;
      s["mode"] = std::string(relay::sts::ToString(look.policy->mode));
      s["mx"] = look.policy->mx;
      s["max_age"] = look.policy->max_age.count();
    }
    j["mta_sts"] = std::move(s);
  }
  for (const auto& h : r.hosts) j["hosts"].push_back(ToJson(h));
  if (!r.via.empty()) j["via"] = r.via;
  if (!r.reason.empty()) {
    j["status"] = r.status;
    j["reason"] = r.reason;
  }
  return j;
}

void PrintText(const json& r, std::ostream& out) {
  out << fmt::format("dane-check {} ({} DANE)\n", r["domain"].get<std::string>(),
                     r["mode"].get<std::string>());
  if (r.contains("route")) {
    out << fmt::format("route: {} (TLS policy {})\n", r["route"].get<std::string>(),
                       r.value("tls_policy", ""));
  } else if (r.value("tls_policy", "dane") != "dane") {
    out << fmt::format("TLS policy: {} ([tls_policy])\n", r["tls_policy"].get<std::string>());
  }
  if (r.contains("mta_sts")) {
    const auto& s = r["mta_sts"];
    if (s.contains("mode")) {
      std::string mx;
      for (const auto& m : s["mx"]) mx += (mx.empty() ? "" : ", ") + m.get<std::string>();
      out << fmt::format("MTA-STS policy: mode {}, id {}, max_age {}, mx: {}{}\n",
                         s["mode"].get<std::string>(), s["id"].get<std::string>(),
                         s["max_age"].get<long>(), mx, s["cached"].get<bool>() ? " (cached)" : "");
    } else {
      out << "MTA-STS policy: none\n";
    }
    if (!s["problem"].get<std::string>().empty()) {
      out << "  MTA-STS problem: " << s["problem"].get<std::string>() << "\n";
    }
  }
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
    if (h.contains("mta_sts")) out << "  MTA-STS: " << h["mta_sts"].get<std::string>() << "\n";
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

bool IsDomainArgument(const std::string& domain, std::ostream& err) {
  if (domain.find('@') == std::string::npos) return true;
  err << "danerelay: dane-check takes a domain, not an address: '" << domain
      << "'; try 'danerelay dane-check " << domain.substr(domain.rfind('@') + 1) << "'\n";
  return false;
}

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
  auto tls_ctx = tls::MakeClientContext(cfg.delivery.mta_sts.ca_file);
  if (!tls_ctx) {
    out << "dane-check: tls: " << tls_ctx.error() << "\n";
    return 3;
  }
  // MTA-STS as delivery applies it, fetched now (the daemon's cache is not consulted).
  std::unique_ptr<relay::StsPolicies> sts;
  if (cfg.delivery.mta_sts.enabled) {
    sts = std::make_unique<relay::StsPolicies>(**resolver, nullptr, cfg.delivery.mta_sts);
  }
  std::optional<relay::ProbeReport> report;
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
  asio::co_spawn(io,
                 relay::ProbeDomain(cfg.delivery, cfg.server.hostname, domain, mandatory,
                                    **resolver, *tls_ctx, sts.get()),
                 [&](std::exception_ptr e, relay::ProbeReport r) {
                   if (!e) report = std::move(r);
                   io.stop();
                 });
  io.run();
  if (gave_up) {
    out << fmt::format("dane-check: gave up after {}s without an answer for {}\n",
                       kDaneCheckLimit.count(), domain);
    return 3;
  }
  if (!report) return 3;
  const json j = ToJson(*report);
  if (json_out) {
    out << j.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  } else {
    PrintText(j, out);
  }
  return relay::ExitStatus(*report);
}

}  // namespace danerelay::tools
