#pragma once
// Logging for both programs, in the spirit of Postfix: one line per event, "warning: ",
// "error: " and "fatal: " before the text of those levels, to stderr (with a timestamp and
// "danerelayd[PID]: ") or to syslog/journald (facility mail, the priority of the level, no
// timestamp of our own) when [log] syslog = true.
#include <string>

#include "relay/options.hpp"

namespace danerelay::relay {

// Replaces spdlog's default logger. `program` is the syslog ident and the stderr tag.
void SetUpLogging(const std::string& program, const LogOptions& options);

// "debug", "info", "warning", "error": the least severe level logged. false when unknown.
bool ParseLogLevel(const std::string& name, int* level);

}  // namespace danerelay::relay
