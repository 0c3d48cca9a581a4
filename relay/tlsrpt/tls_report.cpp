#include "relay/tlsrpt/tls_report.hpp"

#include <nlohmann/json.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <zlib.h>

#include <map>
#include <set>
#include <stdexcept>
#include <tuple>

#include "dns/idn.hpp"
#include "queue/message.hpp"
#include "relay/network.hpp"
#include "relay/smtp/sasl.hpp"

namespace danerelay::relay {
namespace {

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

std::string Utc(queue::TimePoint t) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}",
                     std::chrono::time_point_cast<std::chrono::seconds>(t));
}

}  // namespace

TlsReportHeader MakeTlsReportHeader(const TlsRptOptions& options, const std::string& hostname) {
  TlsReportHeader h;
  h.hostname = hostname;
  h.organization = options.organization.empty() ? hostname : options.organization;
  h.contact = options.contact.empty() ? "postmaster@" + hostname : options.contact;
  return h;
}

std::map<std::string, std::vector<std::string>> ReportDomains(
    const std::vector<std::string>& stored) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& domain : stored) {
    if (auto ascii = dns::ToAsciiDomain(domain)) out[*ascii].push_back(domain);
  }
  return out;
}

std::string ReportSubmitter(std::string_view sender) {
  const std::string_view domain = sender.substr(sender.rfind('@') + 1);
  return dns::ToAsciiDomain(domain).value_or(LowerAscii(domain));
}

std::string ResultType(const queue::AttemptRecord& a) {
  // Typed where the failure happened (queue/failure.hpp, host_planner.hpp), never read back
  // from the text. The domain publishes MTA-STS and no policy could be had: that is the
  // session's failure (§4.3.2).
  const bool sts = a.policy_type == "sts";
  if (sts && a.sts_policy_id.empty() && !a.sts_problem.empty()) return a.sts_problem;
  if (!a.result_type.empty()) return a.result_type;
  // The cached policy applied, and fetching the domain's policy failed (§4.3.2): reported
  // alongside that policy, unless the session failed on its own.
  return sts ? a.sts_problem : "";
}

namespace {

using nlohmann::json;

// §4.4: the policy object a session is reported under, from what its attempt recorded.
json PolicyOf(const std::string& domain, const queue::AttemptRecord& s,
              const std::vector<std::string>& sts_lines) {
  json p = {{"policy-domain", domain}};
  if (s.policy_type == "tlsa") {
    p["policy-type"] = "tlsa";
    p["policy-string"] = s.tlsa_policy;
  } else if (s.policy_type == "sts" && !s.sts_policy_id.empty()) {
    p["policy-type"] = "sts";
    p["policy-string"] = sts_lines;
    json mx = json::array();
    for (const auto& line : sts_lines) {
      if (line.starts_with("mx: ")) mx.push_back(line.substr(4));
    }
    p["mx-host"] = mx;
  } else if (s.policy_type == "sts") {
    // §4.3.2: the domain publishes MTA-STS, its policy could not be had; there is no policy
    // text to show. §4.4 has policy-string an array of strings: an empty one (strict parsers,
    // such as Perl's Mail::TLSRPT, take an array and nothing else).
    p["policy-type"] = "sts";
    p["policy-string"] = json::array();
  } else {
    // §4.4: no policy, so no policy text: an empty array rather than no field.
    p["policy-type"] = "no-policy-found";
    p["policy-string"] = json::array();
  }
  return p;
}

// What the report says of one policy: its sessions, and the failed ones by their details.
struct Tally {
  json policy;
  int ok = 0, failed = 0;
  // (result type, sending IP, MX host, receiving IP, reason) -> sessions
  std::map<std::tuple<std::string, std::string, std::string, std::string, std::string>, int>
      failures;
};

// The sessions counted by policy (keyed by the policy's JSON text). A session is counted once
// (§4.4 counts sessions: the recipients sent over one connection are one; rows from before
// schema 13 have no session and count one each, as they always did), and only where TLS was
// a matter: a refused connection or a plain-text session under no policy is not.
std::map<std::string, Tally> CountSessions(const std::string& domain,
                                           const std::vector<queue::AttemptRecord>& sessions,
                                           const std::vector<std::string>& sts_lines) {
  std::map<std::string, Tally> by_policy;
  std::set<std::int64_t> counted;
  for (const auto& s : sessions) {
    const std::string type = ResultType(s);
    const bool tls = s.tls_verdict == "Verified" || s.tls_verdict == "Trusted" ||
                     s.tls_verdict == "Untrusted" || s.tls_verdict == "Anonymous";
    if (type.empty() && !tls) continue;
    if (s.session != 0 && !counted.insert(s.session).second) continue;
    const json policy = PolicyOf(domain, s, sts_lines);
    Tally& entry = by_policy[policy.dump()];
    entry.policy = policy;
    if (type.empty()) {
      ++entry.ok;
    } else {
      ++entry.failed;
      ++entry.failures[{type, s.sending_ip, s.mx_host, s.ip, s.reply.substr(0, 200)}];
    }
  }
  return by_policy;
}

// One entry of "policies": the policy, its summary and its failure details.
json PolicyEntry(const Tally& t) {
  json details = json::array();
  for (const auto& [k, n] : t.failures) {
    const auto& [type, sending_ip, mx_host, receiving_ip, reason] = k;
    json d = {{"result-type", type}, {"failed-session-count", n}};
    // §4.4: sending-mta-ip is known where a connection was made (not for a host passed over
    // before connecting, nor for an attempt recorded before schema 12).
    if (!sending_ip.empty()) d["sending-mta-ip"] = sending_ip;
    if (!mx_host.empty()) d["receiving-mx-hostname"] = mx_host;
    if (!receiving_ip.empty()) d["receiving-ip"] = receiving_ip;
    d["failure-reason-code"] = reason;
    details.push_back(std::move(d));
  }
  json p = {
      {"policy", t.policy},
      {"summary",
       {{"total-successful-session-count", t.ok}, {"total-failure-session-count", t.failed}}}};
  if (!details.empty()) p["failure-details"] = std::move(details);
  return p;
}

}  // namespace

nlohmann::json BuildTlsReport(const std::string& domain, queue::TimePoint day,
                              const std::vector<queue::AttemptRecord>& sessions,
                              std::string_view sts_policy, const TlsReportHeader& header) {
  json policies = json::array();
  for (const auto& [key, tally] : CountSessions(domain, sessions, Lines(sts_policy))) {
    policies.push_back(PolicyEntry(tally));
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

std::vector<std::string> ParseTlsRptTxt(const std::vector<std::string>& records) {
  const std::string* record = nullptr;
  for (const auto& r : records) {
    if (!r.starts_with("v=TLSRPTv1")) continue;
    if (r.size() > 10 && r[10] != ';' && r[10] != ' ' && r[10] != '\t') continue;
    if (record) return {};  // §3: more than one record: no policy
    record = &r;
  }
  if (!record) return {};
  std::vector<std::string> out;
  std::string_view rest = *record;
  while (!rest.empty()) {
    const auto semi = rest.find(';');
    std::string_view field = rest.substr(0, semi);
    rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
    while (!field.empty() && (field.front() == ' ' || field.front() == '\t')) {
      field.remove_prefix(1);
    }
    while (!field.empty() && (field.back() == ' ' || field.back() == '\t')) field.remove_suffix(1);
    if (!field.starts_with("rua=")) continue;
    field.remove_prefix(4);
    while (!field.empty()) {
      const auto comma = field.find(',');
      std::string uri(field.substr(0, comma));
      field = comma == std::string_view::npos ? std::string_view() : field.substr(comma + 1);
      std::erase_if(uri, [](char c) { return c == ' ' || c == '\t'; });
      const std::string lower = LowerAscii(uri.substr(0, 8));
      if (lower.starts_with("mailto:") || lower.starts_with("https://")) {
        out.push_back(std::move(uri));
      }
    }
    break;  // the first rua= counts
  }
  return out;
}

std::optional<std::string> MailtoAddress(std::string_view uri) {
  if (LowerAscii(uri.substr(0, 7)) != "mailto:") return std::nullopt;
  uri.remove_prefix(7);
  uri = uri.substr(0, uri.find('?'));
  std::string out;
  for (size_t i = 0; i < uri.size(); ++i) {
    if (uri[i] == '%' && i + 2 < uri.size() &&
        std::isxdigit(static_cast<unsigned char>(uri[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(uri[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(uri.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += uri[i];
    }
  }
  const auto at = out.rfind('@');
  if (at == std::string::npos || at == 0 || at + 1 == out.size()) return std::nullopt;
  for (const char c : out) {
    if (static_cast<unsigned char>(c) <= ' ' || c == ',' || c == '<' || c == '>' || c == 0x7f) {
      return std::nullopt;
    }
  }
  return out;
}

std::optional<HttpsUri> ParseHttpsUri(std::string_view uri) {
  if (LowerAscii(uri.substr(0, 8)) != "https://") return std::nullopt;
  uri.remove_prefix(8);
  const auto slash = uri.find_first_of("/?#");
  std::string_view authority = uri.substr(0, slash);
  HttpsUri out;
  std::string_view path = slash == std::string_view::npos ? "" : uri.substr(slash);
  path = path.substr(0, path.find('#'));
  out.path = path.starts_with('/') ? std::string(path) : fmt::format("/{}", path);
  if (authority.find('@') != std::string_view::npos) return std::nullopt;  // no userinfo
  if (const auto colon = authority.rfind(':');
      colon != std::string_view::npos && authority.find(']') == std::string_view::npos) {
    const std::string port(authority.substr(colon + 1));
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string::npos) {
      return std::nullopt;
    }
    const int p = std::stoi(port);
    if (p < 1 || p > 65535) return std::nullopt;
    out.port = static_cast<std::uint16_t>(p);
    authority = authority.substr(0, colon);
  }
  if (authority.empty() || authority.front() == '[') return std::nullopt;  // names only
  for (const char c : authority) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return std::nullopt;
  }
  out.host = LowerAscii(authority);
  return out;
}

std::string Tries(int n) { return fmt::format("{} tr{}", n, n == 1 ? "y" : "ies"); }

std::string Gzip(std::string_view data) {
  z_stream z{};
  // 15 + 16: a gzip header and trailer instead of zlib's.
  if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  std::string out(deflateBound(&z, static_cast<uLong>(data.size())) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate did not finish");
  return out;
}

std::string ComposeTlsReportMail(const TlsReportMail& in) {
  const auto secs = [](queue::TimePoint t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  };
  const std::string boundary = fmt::format("{}/tlsrpt/{}", in.message_id, in.submitter);
  const std::string file =
      fmt::format("{}!{}!{}!{}.json.gz", in.submitter, in.domain, secs(in.begin), secs(in.end));
  std::string to;
  for (const auto& r : in.recipients) to += (to.empty() ? "" : ",\r\n\t") + r;
  std::string m;
  m += fmt::format("From: {}\r\n", in.from);
  m += fmt::format("To: {}\r\n", to);
  m += fmt::format("Date: {}\r\n", queue::FormatRfc5322Date(in.now));
  m += fmt::format("Subject: Report Domain: {} Submitter: {}\r\n Report-ID: <{}>\r\n", in.domain,
                   in.submitter, in.report_id);
  m += fmt::format("Message-ID: <{}@{}>\r\n", in.message_id, in.submitter);
  m += fmt::format("TLS-Report-Domain: {}\r\n", in.domain);
  m += fmt::format("TLS-Report-Submitter: {}\r\n", in.submitter);
  m += "Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n";
  m += fmt::format(
      "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n\tboundary=\"{}\"\r\n\r\n",
      boundary);
  m += "This is a multi-part message in MIME format.\r\n\r\n";
  m += fmt::format("--{}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n", boundary);
  m += fmt::format(
      "This is an aggregate TLS report (RFC 8460) from {}\r\n"
      "for mail to {}\r\n"
      "from {:%Y-%m-%dT%H:%M:%SZ} to {:%Y-%m-%dT%H:%M:%SZ}.\r\n\r\n",
      in.submitter, in.domain, std::chrono::time_point_cast<std::chrono::seconds>(in.begin),
      std::chrono::time_point_cast<std::chrono::seconds>(in.end));
  m += fmt::format(
      "--{}\r\nContent-Type: application/tlsrpt+gzip;\r\n\tname=\"{}\"\r\n"
      "Content-Disposition: attachment;\r\n\tfilename=\"{}\"\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\n",
      boundary, file, file);
  const std::string b64 = EncodeBase64(in.gzipped_json);
  for (size_t i = 0; i < b64.size(); i += 76) m += b64.substr(i, 76) + "\r\n";
  m += fmt::format("\r\n--{}--\r\n", boundary);
  return m;
}

}  // namespace danerelay::relay
