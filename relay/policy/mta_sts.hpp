#pragma once
// MTA-STS (RFC 8461), the pure parts: the TXT record at _mta-sts.<domain> (§3.1), the policy
// file (§3.2) and the MX host patterns (§4.1). Fetching, caching and applying live in
// sts_policies.hpp and the delivery.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

namespace danerelay::relay::sts {

// How an attempt tells people (`queue show`) that the domain publishes MTA-STS but no policy
// could be had: "no policy: <result type>: <why>" in AttemptRecord::mta_sts. Nothing reads it
// back: TLS-RPT reads AttemptRecord::sts_problem.
inline constexpr std::string_view kNoStsPolicyLabel = "no policy: ";

enum class Mode { kNone, kTesting, kEnforce };
std::string_view ToString(Mode mode);  // "none", "testing", "enforce"

struct Policy {
  std::string id;  // from the TXT record it was fetched under
  Mode mode = Mode::kNone;
  std::vector<std::string> mx;  // patterns, lower case: "mx.example.com", "*.example.net"
  std::chrono::seconds max_age{0};
};

// The policy id of the one "v=STSv1" TXT record among `records`; none when there is no such
// record, more than one, or it is malformed (§3.1: then the domain has no policy).
std::optional<std::string> ParseTxt(const std::vector<std::string>& records);

// The policy file: "key: value" lines (CRLF or LF), version STSv1, mode, max_age (at most
// 31557600 s), at least one mx unless mode is none; unknown keys are ignored. `id` is left empty.
tl::expected<Policy, std::string> ParsePolicy(std::string_view text);

// §5.1: whether the cached `policy`, fetched at `fetched`, is to be fetched again now that the
// TXT record names `id`: when the id changed, and ahead of expiry even when it did not (from a
// day after the fetch, or from half its max_age when that is sooner), so that a domain whose
// policy stays the same never lapses; the re-fetched policy renews its expiry.
bool FetchDue(const Policy& policy, std::chrono::system_clock::time_point fetched,
              std::string_view id, std::chrono::system_clock::time_point now);

// §3.3: whether a policy response's Content-Type is the media type text/plain. Type and
// subtype compare case-insensitively (RFC 2045 §5.1), parameters ("; charset=utf-8") are
// allowed: "Text/Plain; charset=UTF-8" is, "text/plainx" and "text/html" are not.
bool IsPolicyMediaType(std::string_view content_type);

// §4.1: an exact host name, or "*.example.net" for exactly one more label on the left;
// case-insensitive, trailing dots ignored.
bool MxMatches(std::string_view pattern, std::string_view host);
bool MxAllowed(const Policy& policy, std::string_view host);

}  // namespace danerelay::relay::sts
