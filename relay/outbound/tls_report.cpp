#include "relay/outbound/tls_report.hpp"

#include <nlohmann/json.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <map>
#include <tuple>

namespace danerelay::relay {
namespace {

bool Has(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

std::vector<std::string> Lines(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string line(text.substr(0, nl));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) out.push_back(std::move(line));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
  }
  return out;
}

// "secure: 3 1 1 AB.., 2 0 1 CD.." -> the records.
std::vector<std::string> TlsaRecords(std::string_view dnssec_tlsa) {
  std::vector<std::string> out;
  constexpr std::string_view kPrefix = "secure: ";
  if (!dnssec_tlsa.starts_with(kPrefix)) return out;
  std::string_view rest = dnssec_tlsa.substr(kPrefix.size());
  while (!rest.empty()) {
    const auto comma = rest.find(", ");
    out.emplace_back(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 2);
  }
  return out;
}

std::string Utc(queue::TimePoint t) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}",
                     std::chrono::time_point_cast<std::chrono::seconds>(t));
}

}  // namespace

std::string ResultType(const queue::AttemptRecord& a) {
  const std::string_view r = a.reply;
  if (Has(r, "does not offer STARTTLS") || Has(r, "STARTTLS refused")) {
    return "starttls-not-supported";
  }
  if (Has(r, "hostname mismatch")) return "certificate-host-mismatch";
  if (Has(r, "certificate has expired")) return "certificate-expired";
  if (Has(r, "not trusted under the MTA-STS policy")) return "certificate-not-trusted";
  if (Has(r, "no usable TLSA records")) return "tlsa-invalid";
  if (Has(r, "DNSSEC-bogus") || Has(r, "(bogus)")) return "dnssec-invalid";
  if (Has(r, "mandatory DANE:")) return "dane-required";
  if (Has(r, "Server certificate not verified") || Has(r, "TLS handshake with") ||
      Has(r, "does not match the MTA-STS policy") || Has(r, "DANE setup for")) {
    return "validation-failure";
  }
  return "";
}

nlohmann::json BuildTlsReport(const std::string& domain, queue::TimePoint day,
                              const std::vector<queue::AttemptRecord>& sessions,
                              std::string_view sts_policy, const TlsReportHeader& header) {
  using nlohmann::json;
  struct Policy {
    json policy;
    int ok = 0, failed = 0;
    // (result type, MX host, IP, reason) -> sessions
    std::map<std::tuple<std::string, std::string, std::string, std::string>, int> failures;
  };
  std::map<std::string, Policy> by_policy;  // keyed by the policy's JSON text
  const std::vector<std::string> sts_lines = Lines(sts_policy);
  for (const auto& s : sessions) {
    json p = {{"policy-domain", domain}};
    const bool sts = !s.mta_sts.empty() && !Has(s.mta_sts, "DANE applies");
    const auto tlsa = TlsaRecords(s.dnssec_tlsa);
    if (!tlsa.empty() && !sts) {
      p["policy-type"] = "tlsa";
      p["policy-string"] = tlsa;
    } else if (sts) {
      p["policy-type"] = "sts";
      p["policy-string"] = sts_lines;
      json mx = json::array();
      for (const auto& line : sts_lines) {
        if (line.starts_with("mx: ")) mx.push_back(line.substr(4));
      }
      p["mx-host"] = mx;
    } else {
      p["policy-type"] = "no-policy-found";
    }
    const std::string type = ResultType(s);
    const bool tls = s.tls_verdict == "Verified" || s.tls_verdict == "Trusted" ||
                     s.tls_verdict == "Untrusted" || s.tls_verdict == "Anonymous";
    if (type.empty() && !tls) continue;  // not a TLS matter (refused connection, plain text)
    Policy& entry = by_policy[p.dump()];
    entry.policy = p;
    if (type.empty()) {
      ++entry.ok;
    } else {
      ++entry.failed;
      ++entry.failures[{type, s.mx_host, s.ip, s.reply.substr(0, 200)}];
    }
  }
  json policies = json::array();
  for (auto& [key, e] : by_policy) {
    json details = json::array();
    for (const auto& [k, n] : e.failures) {
      json d = {{"result-type", std::get<0>(k)}, {"failed-session-count", n}};
      if (!std::get<1>(k).empty()) d["receiving-mx-hostname"] = std::get<1>(k);
      if (!std::get<2>(k).empty()) d["receiving-ip"] = std::get<2>(k);
      d["failure-reason-code"] = std::get<3>(k);
      details.push_back(std::move(d));
    }
    json p = {
        {"policy", e.policy},
        {"summary",
         {{"total-successful-session-count", e.ok}, {"total-failure-session-count", e.failed}}}};
    if (!details.empty()) p["failure-details"] = std::move(details);
    policies.push_back(std::move(p));
  }
  const auto end = day + std::chrono::hours(24) - std::chrono::seconds(1);
  return json{{"organization-name", header.organization},
              {"date-range", {{"start-datetime", Utc(day)}, {"end-datetime", Utc(end)}}},
              {"contact-info", header.contact},
              {"report-id", fmt::format("{:%Y-%m-%d}_{}@{}",
                                        std::chrono::time_point_cast<std::chrono::seconds>(day),
                                        domain, header.hostname)},
              {"policies", policies}};
}

}  // namespace danerelay::relay
