#pragma once
// danerelay tls-rpt preview DOMAIN [--date YYYY-MM-DD]: the TLS-RPT report (RFC 8460) that the
// attempts of that UTC day (default: today) make for DOMAIN, printed as JSON, nothing sent.
#include <ostream>
#include <string>

#include "config/config.hpp"

namespace danerelay::tools {

int RunTlsRptPreview(const config::Config& config, const std::string& domain,
                     const std::string& date, std::ostream& out, std::ostream& err);

}  // namespace danerelay::tools
