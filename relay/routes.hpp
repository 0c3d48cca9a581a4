#pragma once
// The operator's routing and TLS policy tables, as Postfix has them in relayhost, transport_maps,
// sender_dependent_relayhost_maps and smtp_tls_policy_maps:
//
//   [routes]         by recipient domain: "example.com" (exact), ".example.com" (its
//                    subdomains), "*" (everything else: a relayhost); the most specific wins
//   [sender_routes]  by MAIL FROM ("user@example.com", then "@example.com"), before [routes]
//   [tls_policy]     the TLS policy for mail delivered by MX ("partner.example" = "verify")
//
// Pure lookups and values (no Asio): config/ fills them in, delivery reads them.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "relay/network.hpp"

namespace danerelay::relay {

// What a connection must show of TLS (the smtp_tls_policy_maps levels).
enum class TlsPolicy {
  kDane,         // DANE where usable TLSA records are, else opportunistic (the default)
  kDaneOnly,     // mandatory DANE
  kVerify,       // STARTTLS and a certificate valid under WebPKI for one of `names`
  kFingerprint,  // STARTTLS and a certificate (or its public key) with one of the SHA-256 pins
  kEncrypt,      // STARTTLS required, the certificate not checked
  kMay,          // STARTTLS when offered, plain text otherwise
  kNone,         // never STARTTLS
};
std::optional<TlsPolicy> ParseTlsPolicy(std::string_view text);
std::string_view ToString(TlsPolicy policy);
// verify and fingerprint authenticate the peer by the operator's configuration.
bool Authenticates(TlsPolicy policy);

struct TlsSettings {
  TlsPolicy policy = TlsPolicy::kDane;
  std::vector<std::string> names;          // kVerify: accepted names ("" = the host's own name)
  std::vector<std::string> fingerprints;   // kFingerprint: SHA-256, hex, lower case, no colons
  bool implicit_tls = false;               // RFC 8314: TLS from the first byte (port 465)
  std::filesystem::path client_cert_file;  // read at each connection: a SIGHUP is not needed
  std::filesystem::path client_key_file;
  bool explicit_policy = false;  // set in the table (DANE still wins where TLSA is usable)
};

enum class AddressPreference { kAny, kIpv4, kIpv6 };
std::optional<AddressPreference> ParseAddressPreference(std::string_view text);

// Where connections come from and how we introduce ourselves: [delivery] for all, a route's own
// keys over them.
struct SourceOptions {
  std::string address;    // IPv4 source address ("": the kernel's choice)
  std::string address6;   // IPv6 source address
  std::string ehlo_name;  // "": [server] hostname
  AddressPreference preference = AddressPreference::kAny;
  bool ipv4 = true;  // address_families
  bool ipv6 = true;
};

// `addresses` (IPv4 first, then IPv6, as resolved) filtered and ordered by `source`.
std::vector<std::string> OrderAddresses(std::vector<std::string> addresses,
                                        const SourceOptions& source);

// SMTP AUTH to an upstream (RFC 4954: PLAIN, LOGIN).
struct UpstreamAuth {
  std::string user;
  std::filesystem::path password_file;  // first line; read at each connection
  bool allow_unverified = false;        // also under may/encrypt/dane without TLSA
};

struct Route {
  std::string key;                  // as configured: "*", ".example.com", "user@example.com"
  std::vector<RouteHost> hosts;     // in order, all within one attempt
  std::vector<RouteHost> fallback;  // after every host failed temporarily
  TlsSettings tls;
  std::optional<UpstreamAuth> auth;
  SourceOptions source;
};

struct Routes {
  std::map<std::string, Route> by_domain;  // A-label keys
  std::map<std::string, Route> by_sender;  // "user@example.com" or "@example.com", lower case
  std::map<std::string, TlsSettings> tls_policy;  // [tls_policy], keys as in by_domain
  bool empty() const { return by_domain.empty() && by_sender.empty(); }
};

// The route for mail from `sender` to `domain` (A-label), or nullptr for MX delivery:
// [sender_routes] by address, then by "@domain", then [routes] exact, the longest ".suffix",
// "*".
const Route* FindRoute(const Routes& routes, std::string_view sender, std::string_view domain);
// A [tls_policy] entry for `domain`: exact, then the longest ".suffix". nullptr: none.
const TlsSettings* FindTlsPolicy(const Routes& routes, std::string_view domain);

// The entry of `table` for `domain` by the same rules (exact, longest ".suffix", then "*" when
// `star`).
template <typename T>
const T* MostSpecific(const std::map<std::string, T>& table, std::string_view domain, bool star) {
  if (auto it = table.find(std::string(domain)); it != table.end()) return &it->second;
  for (size_t dot = domain.find('.'); dot != std::string_view::npos;
       dot = domain.find('.', dot + 1)) {
    if (auto it = table.find(std::string(domain.substr(dot))); it != table.end()) {
      return &it->second;
    }
  }
  if (star) {
    if (auto it = table.find("*"); it != table.end()) return &it->second;
  }
  return nullptr;
}

}  // namespace danerelay::relay
