#pragma once
// Logging for both programs in Postfix's form, so that tools written for Postfix's log read ours
// (pflogsumm --syslog-name=danerelay, fail2ban's postfix filter with its daemon name changed):
// one line per event, tagged with the Postfix program that does the same job
// ("danerelay/smtpd[PID]: ", "danerelay/qmgr[PID]: ", ...), "warning: ", "error: " and
// "fatal: " before the text of those levels. To stderr, each line is preceded by its time in
// UTC (RFC 3339, "Z") and the host name, as rsyslog writes a file with its RFC 3339 template;
// to syslog/journald (facility mail, the priority of the level) when [log] syslog = true, with
// the time left to syslog.
#include <cstddef>
#include <exception>
#include <functional>
#include <string>
#include <string_view>

#include <spdlog/logger.h>

#include "relay/options.hpp"

namespace danerelay::relay {

// The Postfix program whose job a line is about; it names the line's tag. Log readers count by
// it: pflogsumm takes "client=" only from smtpd and the delivery status from any other.
enum class Service {
  kMaster,   // start, stop, reload, configuration, health (the default logger)
  kSmtpd,    // SMTP server: connections, rejects, AUTH, accepted messages
  kCleanup,  // message-id of an accepted message
  kQmgr,     // the queue: sender and size, removed, expired, operator actions, housekeeping
  kSmtp,     // delivery: per-recipient status, DANE and TLS facts
  kBounce,   // notices to senders, linked to the message they are about
};

// The logger of `service`; they share one sink, set up by SetUpLogging (before that: stderr).
// Valid for the life of the program, also across a reload.
spdlog::logger& Log(Service service);

// Sets up the sink and the level for every service's logger, and makes the master's the
// default logger (spdlog::info & co). `master_tag` tags the default logger's lines
// ("danerelay/master" in the daemon, "danerelay/postsuper" in the command line); the other
// services are "danerelay/<name>". May be called again (a reload) while others log.
void SetUpLogging(const std::string& master_tag, const LogOptions& options);

// Text from outside (DNS names and records, rua URIs, policy files, remote replies) made safe
// for a log line: bytes outside printable ASCII (control characters, DEL, non-ASCII) are written
// as \xHH and a backslash as \\, so nothing can end a line, forge a new one or drive a terminal;
// longer text is cut to `max` octets, "..." marking the cut. Use it on every such piece before it
// reaches a log line. (The logger also escapes control characters in whole lines, as a last
// guard; that keeps UTF-8 and leaves the length alone.)
std::string LogSafe(std::string_view text, std::size_t max = 256);

// The completion handler of a coroutine started with co_spawn (style.md: never `detached`): an
// exception that escaped it is a bug, logged on `service`'s logger as "BUG: <what> ended with an
// exception: ...". Nothing is logged when it ended normally.
std::function<void(std::exception_ptr)> LogIfBug(Service service, std::string what);

// "debug", "info", "warning", "error": the least severe level logged. false when unknown.
bool ParseLogLevel(const std::string& name, int* level);

}  // namespace danerelay::relay
