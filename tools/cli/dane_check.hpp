#pragma once
// danerelay dane-check: what delivery to a domain would do, in the spirit of posttls-finger.
// Resolves MX, addresses and TLSA with their DNSSEC state, connects to each MX (STARTTLS, then
// QUIT: no mail is sent), shows the certificate chain with its digests, which TLSA record
// matched at which depth, and the verdict under the DANE policy.
#include <ostream>
#include <string>

#include "config/config.hpp"

namespace danerelay::tools {

// An address is not a domain: "user@example.net" would be looked up as a name that does not
// exist and reported as such. False after saying so on `err`, with the domain to try.
bool IsDomainArgument(const std::string& domain, std::ostream& err);

// Exit status: 0 mail would be delivered, 1 deferred, 2 bounced (NXDOMAIN, null MX), 3 setup
// error (the resolver could not start).
int RunDaneCheck(const config::Config& config, const std::string& domain, bool mandatory, bool json,
                 std::ostream& out);

}  // namespace danerelay::tools
