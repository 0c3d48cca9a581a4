#pragma once
// [dkim]: which submissions danerelay signs (RFC 6376) and with which keys. Plain values: the
// keys themselves are loaded by key.hpp (config/ loads each once to check it, the signer again
// at start and on every reload).
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "relay/network.hpp"

namespace danerelay::relay {

// One [[dkim.key]]: a key signs mail whose header From is `domain` (or, with sign_subdomains, a
// subdomain of it). Several keys for one domain give several signatures (RSA and Ed25519).
struct DkimKeyOptions {
  std::string domain;  // lower case, no trailing dot
  std::string selector;
  std::filesystem::path key_file;
};

struct DkimOptions {
  std::vector<DkimKeyOptions> keys;
  // sources = ["auth", "trusted"]: authenticated submissions are signed by default; clients of
  // trusted_networks only when asked, and then only those in trusted_sources when it is set.
  bool sign_auth = true;
  bool sign_trusted = false;
  std::vector<IpNetwork> trusted_sources;  // empty: every trusted network
  bool sign_subdomains = false;
  // Header fields to sign (h=); empty: DefaultSignedHeaders() (dkim/signer.hpp).
  std::vector<std::string> headers;
  // x= (RFC 6376 §3.5) this long after signing; 0: no x=. Checked to outlive [retry]
  // max_lifetime, so no retry sends a signature that expired in the queue.
  std::chrono::seconds expire{0};
  // The domain whose key signs danerelay's own mail (bounces, notices, TLS-RPT); "": the
  // domain of [server] hostname.
  std::string notices_domain;
};

}  // namespace danerelay::relay
