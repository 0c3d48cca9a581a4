#pragma once
// danerelay dkim keygen | check: makes a DKIM key with the TXT record to publish, and checks
// that the records in DNS match the configured keys (through the validating resolver).
#include <iosfwd>
#include <string>

#include "config/config.hpp"

namespace danerelay::tools {

struct DkimKeygenArgs {
  std::string domain;
  std::string selector;               // "": "dr" and the year and month ("dr202612")
  std::string algorithm = "rsa2048";  // rsa2048, rsa3072, ed25519
  std::string key_file;               // "": <config directory>/dkim/<domain>.<selector>.pem
};

// Writes a new key (0600; owned by [server] user when run as root), never over an existing
// file, and prints the record to publish and the [[dkim.key]] table. Exit 0, 1 (could not
// write), 64 (bad arguments).
int RunDkimKeygen(const config::Config& config, DkimKeygenArgs args, std::ostream& out,
                  std::ostream& err);

// Looks up selector._domainkey.domain for every [[dkim.key]] of `domain` (only `selector` when
// given) and says whether the record's key is the configured key, with its DNSSEC state.
// Exit 0 every record matches, 1 a record is missing, differs or cannot be looked up, 3 no
// such key configured or the resolver cannot start.
int RunDkimCheck(const config::Config& config, const std::string& domain,
                 const std::string& selector, std::ostream& out);

}  // namespace danerelay::tools
