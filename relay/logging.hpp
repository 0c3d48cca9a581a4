#pragma once
// Logging for both programs, in the spirit of Postfix: one line per event, "warning: ",
// "error: " and "fatal: " before the text of those levels, to stderr (with a timestamp and
// "danerelayd[PID]: ") or to syslog/journald (facility mail, the priority of the level, no
// timestamp of our own) when [log] syslog = true.
#include <cstddef>
#include <string>
#include <string_view>

#include "relay/options.hpp"

namespace danerelay::relay {

// Replaces spdlog's default logger. `program` is the syslog ident and the stderr tag.
void SetUpLogging(const std::string& program, const LogOptions& options);

// Text from outside (DNS names and records, rua URIs, policy files, remote replies) made safe
// for a log line: bytes outside printable ASCII (control characters, DEL, non-ASCII) are written
// as \xHH and a backslash as \\, so nothing can end a line, forge a new one or drive a terminal;
// longer text is cut to `max` octets, "..." marking the cut. Use it on every such piece before it
// reaches a log line. (The logger also escapes control characters in whole lines, as a last
// guard; that keeps UTF-8 and leaves the length alone.)
std::string LogSafe(std::string_view text, std::size_t max = 256);

// "debug", "info", "warning", "error": the least severe level logged. false when unknown.
bool ParseLogLevel(const std::string& name, int* level);

}  // namespace danerelay::relay
