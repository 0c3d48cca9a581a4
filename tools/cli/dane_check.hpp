#pragma once
// danerelay dane-check: what delivery to a domain would do, in the spirit of posttls-finger.
// Resolves MX, addresses and TLSA with their DNSSEC state, connects to each MX (STARTTLS, then
// QUIT: no mail is sent), shows the certificate chain with its digests, which TLSA record
// matched at which depth, and the verdict under the DANE policy.
#include <ostream>
#include <string>

#include "config/config.hpp"

namespace danerelay::tools {

// Exit status: 0 mail would be delivered, 1 deferred, 2 bounced (NXDOMAIN, null MX), 3 setup
// error (the resolver could not start).
int RunDaneCheck(const config::Config& config, const std::string& domain, bool mandatory, bool json,
                 std::ostream& out);

}  // namespace danerelay::tools
