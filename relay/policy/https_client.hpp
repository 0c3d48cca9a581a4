#pragma once
// HTTPS requests through libcurl, for MTA-STS policy fetches (RFC 8461 §3.3) and TLS-RPT
// reports (RFC 8460 §5.4): WebPKI certificate checks (the system store or a chosen CA file), no
// redirects, a size and a time limit, and the addresses pinned to what danerelay's own resolver
// found (libcurl never asks the system resolver) and, unless allowed, to globally routed ones:
// a remote domain names the host, so it must not make us reach loopback, private networks or
// other special-purpose addresses. Blocking: run it off the io thread.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <tl/expected.hpp>

namespace danerelay::relay {

struct HttpsRequest {
  std::string host;  // e.g. "mta-sts.example.com"
  std::uint16_t port = 443;
  std::string path;                    // e.g. "/.well-known/mta-sts.txt"
  std::vector<std::string> addresses;  // where `host` is; at least one
  // Connect to special-purpose addresses too ([mta_sts] allow_special_addresses: test worlds).
  bool allow_special_addresses = false;
  std::string ca_file;  // "": the system's CA store
  std::chrono::seconds timeout{60};
  std::size_t max_size = 64 * 1024;  // larger bodies are an error
  // A POST when set: this body with this Content-Type.
  std::string post_body;
  std::string post_type;
};

struct HttpsResponse {
  long status = 0;
  std::string content_type;
  std::string body;
};

struct HttpsError {
  std::string message;       // the URL and what went wrong
  bool certificate = false;  // the server's certificate did not pass the WebPKI check
  bool refused = false;      // not tried: the host has only special-purpose addresses
};

// The addresses of `host` that a request may connect to: those SpecialPurpose() (the IANA
// registries, as the sender checks' reject_private_mx uses them) names are dropped unless
// `allow_special`. The error, when none is left, names them and the setting.
tl::expected<std::vector<std::string>, std::string> UsableAddresses(
    const std::string& host, const std::vector<std::string>& addresses, bool allow_special);

// GET, or POST when request.post_body is set. Any HTTP status is a response.
tl::expected<HttpsResponse, HttpsError> HttpsRequestOnce(const HttpsRequest& request);

}  // namespace danerelay::relay
