#pragma once
// TLS-RPT (RFC 8460): the daily report for one policy domain, built from the attempts table.
// Sessions are classified by the policy they were made under (RFC 8460 §4.4: "tlsa" where DANE
// applied, "sts" under an MTA-STS policy, else "no-policy-found") and, for failures, by the
// result types of §4.3, read from what the attempt recorded.
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "queue/message.hpp"
#include "relay/options.hpp"

namespace danerelay::relay {

struct TlsReportHeader {
  std::string organization;  // [tls_rpt] organization
  std::string contact;       // [tls_rpt] contact
  std::string hostname;      // the reporting MTA, for the report id
};

// The header fields from [tls_rpt]: organization (default: the host name), contact (default:
// postmaster@<host name>).
TlsReportHeader MakeTlsReportHeader(const TlsRptOptions& options, const std::string& hostname);

// The §4.3 result type of a failed session, "" when the attempt was not a TLS failure (a
// connection refused, a recipient refused inside a good TLS session): the type recorded with the
// attempt, or the §4.3.2 type of a failed MTA-STS policy fetch (which is the failure when no
// policy could be had, and is reported alongside a cached policy that applied).
std::string ResultType(const queue::AttemptRecord& session);

// The domains to report on, by their A-label form (RFC 8460 §3: the TXT lookup at
// _smtp._tls.<domain>; §4.4: the policy-domain), each with the forms its recipients were stored
// under: "Bücher.example" and "xn--bcher-kva.example" are one domain with one report. Names
// IDNA2008 does not allow are left out (no mail could go there).
std::map<std::string, std::vector<std::string>> ReportDomains(
    const std::vector<std::string>& stored);

// The TLS-Report-Submitter (RFC 8460 §5.3) of reports sent from `sender`: the domain of that
// address (the contact's, or the host name's for postmaster@), in A-labels, so that the
// submitter, the From: and the contact name the same domain.
std::string ReportSubmitter(std::string_view sender);

// The report for `domain` for the UTC day that starts at `day`, from the typed facts of the
// attempts (AttemptRecord::policy_type, tlsa_policy, sts_policy_id, sts_problem, result_type,
// session), never from their texts. `sts_policy`: the text of the domain's MTA-STS policy as
// cached ("" when none).
nlohmann::json BuildTlsReport(const std::string& domain, queue::TimePoint day,
                              const std::vector<queue::AttemptRecord>& sessions,
                              std::string_view sts_policy, const TlsReportHeader& header);

// The reporting URIs of a domain's TLS-RPT record (RFC 8460 §3), from the TXT records at
// _smtp._tls.<domain>: exactly one record starting "v=TLSRPTv1"; its rua= field, a
// comma-separated list of mailto: and https: URIs (others are dropped). Empty: no policy.
std::vector<std::string> ParseTlsRptTxt(const std::vector<std::string>& records);

// "mailto:tlsrpt@example.com?subject=x" -> "tlsrpt@example.com" (%-escapes decoded); none
// when that is not one plain address.
std::optional<std::string> MailtoAddress(std::string_view uri);

// "https://host[:port]/path" -> its parts; none when it is not one.
struct HttpsUri {
  std::string host;
  std::uint16_t port = 443;
  std::string path;  // at least "/"
};
std::optional<HttpsUri> ParseHttpsUri(std::string_view uri);

// "1 try", "3 tries": how a POST's tries are logged and listed.
std::string Tries(int n);

// gzip (RFC 1952) of `data`, as RFC 8460 §5.3 asks for.
std::string Gzip(std::string_view data);

// The report as a mail (RFC 8460 §5.3): Subject, TLS-Report-Domain, TLS-Report-Submitter, a
// multipart/report; report-type="tlsrpt" with a text part and the gzipped JSON as an
// application/tlsrpt+gzip attachment named submitter!domain!begin!end.json.gz.
struct TlsReportMail {
  std::string from;                     // From: (and the envelope sender)
  std::vector<std::string> recipients;  // To:
  std::string domain;                   // the policy domain
  std::string submitter;                // the reporting domain (our host name)
  std::string report_id;
  queue::TimePoint begin, end;  // the report's date range
  std::string gzipped_json;
  std::string message_id;  // for Message-ID and the MIME boundary
  queue::TimePoint now;
};
std::string ComposeTlsReportMail(const TlsReportMail& mail);

}  // namespace danerelay::relay
