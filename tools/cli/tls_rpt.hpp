#pragma once
// danerelay tls-rpt preview DOMAIN [--date YYYY-MM-DD]: the TLS-RPT report (RFC 8460) that the
// attempts of that UTC day (default: today) make for DOMAIN, printed as JSON, nothing sent.
// danerelay tls-rpt list [--date YYYY-MM-DD]: the reports the daemon made for that day
// (default: yesterday), one line each: domain, report id, where it went, what became of it.
#include <ostream>
#include <string>

#include "config/config.hpp"

namespace danerelay::tools {

int RunTlsRptPreview(const config::Config& config, const std::string& domain,
                     const std::string& date, std::ostream& out, std::ostream& err);
int RunTlsRptList(const config::Config& config, const std::string& date, std::ostream& out,
                  std::ostream& err);

}  // namespace danerelay::tools
