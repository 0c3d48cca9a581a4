#include "relay/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <syslog.h>

#include <algorithm>
#include <array>
#include <memory>

namespace danerelay::relay {
namespace {

// %* : "warning: ", "error: ", "fatal: " or nothing, by level (Postfix's msg_warn & co).
class LevelPrefix : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string_view prefix = msg.level == spdlog::level::warn       ? "warning: "
                                    : msg.level == spdlog::level::err      ? "error: "
                                    : msg.level == spdlog::level::critical ? "fatal: "
                                                                           : "";
    dest.append(prefix.data(), prefix.data() + prefix.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<LevelPrefix>();
  }
};

// %~ : the message, its control characters escaped as \xHH: whatever a caller passed in, a log
// line stays one line (CR, LF and the like could otherwise forge lines for log readers such as
// pflogsumm or fail2ban, or drive a terminal).
class SafeMessage : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    static constexpr char kHex[] = "0123456789abcdef";
    for (const char ch : msg.payload) {
      const auto c = static_cast<unsigned char>(ch);
      if (c >= 0x20 && c != 0x7f) {
        dest.push_back(ch);
      } else {
        const char escaped[] = {'\\', 'x', kHex[c >> 4], kHex[c & 15]};
        dest.append(escaped, escaped + 4);
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<SafeMessage>();
  }
};

int Facility(const std::string& name) {
  static constexpr std::array<std::pair<const char*, int>, 10> kFacilities = {{
      {"mail", LOG_MAIL},
      {"daemon", LOG_DAEMON},
      {"local0", LOG_LOCAL0},
      {"local1", LOG_LOCAL1},
      {"local2", LOG_LOCAL2},
      {"local3", LOG_LOCAL3},
      {"local4", LOG_LOCAL4},
      {"local5", LOG_LOCAL5},
      {"local6", LOG_LOCAL6},
      {"local7", LOG_LOCAL7},
  }};
  for (const auto& [n, f] : kFacilities) {
    if (name == n) return f;
  }
  return LOG_MAIL;
}

}  // namespace

std::string LogSafe(std::string_view text, std::size_t max) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(std::min(text.size(), max) + 8);
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    char piece[4];
    std::size_t n = 1;
    if (c == '\\') {
      piece[0] = piece[1] = '\\';
      n = 2;
    } else if (c >= 0x20 && c < 0x7f) {
      piece[0] = ch;
    } else {
      piece[0] = '\\';
      piece[1] = 'x';
      piece[2] = kHex[c >> 4];
      piece[3] = kHex[c & 15];
      n = 4;
    }
    if (out.size() + n > max) return out + "...";
    out.append(piece, n);
  }
  return out;
}

bool ParseLogLevel(const std::string& name, int* level) {
  if (name == "debug") {
    *level = spdlog::level::debug;
  } else if (name == "info") {
    *level = spdlog::level::info;
  } else if (name == "warning") {
    *level = spdlog::level::warn;
  } else if (name == "error") {
    *level = spdlog::level::err;
  } else {
    return false;
  }
  return true;
}

void SetUpLogging(const std::string& program, const LogOptions& options) {
  std::shared_ptr<spdlog::logger> logger;
  std::string pattern;
  if (options.syslog) {
    // spdlog maps the levels to syslog priorities (warn: LOG_WARNING, err: LOG_ERR, critical:
    // LOG_CRIT); journald reads the same socket.
    auto sink = std::make_shared<spdlog::sinks::syslog_sink_mt>(
        program, LOG_PID | LOG_NDELAY, Facility(options.syslog_facility), true);
    logger = std::make_shared<spdlog::logger>(program, sink);
    pattern = "%*%~";
  } else {
    logger = std::make_shared<spdlog::logger>(program,
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
    pattern = "%Y-%m-%dT%H:%M:%S.%e " + program + "[%P]: %*%~";
  }
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<LevelPrefix>('*').add_flag<SafeMessage>('~').set_pattern(pattern);
  logger->set_formatter(std::move(formatter));
  logger->set_level(static_cast<spdlog::level::level_enum>(options.level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace danerelay::relay
