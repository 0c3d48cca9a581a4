#pragma once
// TLS-RPT (RFC 8460): the daily report for one policy domain, built from the attempts table.
// Sessions are classified by the policy they were made under (RFC 8460 §4.4: "tlsa" where DANE
// applied, "sts" under an MTA-STS policy, else "no-policy-found") and, for failures, by the
// result types of §4.3, read from what the attempt recorded.
#include <nlohmann/json_fwd.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "queue/message.hpp"

namespace danerelay::relay {

struct TlsReportHeader {
  std::string organization;  // [tls_rpt] organization
  std::string contact;       // [tls_rpt] contact
  std::string hostname;      // the reporting MTA, for the report id
};

// The §4.3 result type of a failed session, "" when the attempt was not a TLS failure (a
// connection refused, a recipient refused inside a good TLS session).
std::string ResultType(const queue::AttemptRecord& session);

// The report for `domain` for the UTC day that starts at `day`. `sts_policy`: the text of the
// domain's MTA-STS policy as cached ("" when none).
nlohmann::json BuildTlsReport(const std::string& domain, queue::TimePoint day,
                              const std::vector<queue::AttemptRecord>& sessions,
                              std::string_view sts_policy, const TlsReportHeader& header);

}  // namespace danerelay::relay
