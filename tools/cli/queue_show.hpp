#pragma once
// danerelay queue show ID: one message, read-only: envelope, recipients, attempts and headers
// (queue_view.hpp), as JSON, or the stored message byte for byte.
#include <ostream>
#include <string>

#include "config/config.hpp"

namespace danerelay::tools {

enum class ShowFormat { kText, kJson, kRaw };

// Exit status: 0 shown, 1 no such message, 2 queue error.
int RunQueueShow(const config::Config& config, const std::string& id, ShowFormat format,
                 std::ostream& out, std::ostream& err);

}  // namespace danerelay::tools
