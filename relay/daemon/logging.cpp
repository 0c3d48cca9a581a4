#include "relay/daemon/logging.hpp"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>

namespace danerelay::relay {
namespace {

constexpr std::array<const char*, 6> kServiceNames = {"master", "smtpd", "cleanup",
                                                      "qmgr",   "smtp",  "bounce"};

// "warning: ", "error: ", "fatal: " or nothing, by level (Postfix's msg_warn & co).
std::string_view LevelPrefix(spdlog::level::level_enum level) {
  return level == spdlog::level::warn       ? "warning: "
         : level == spdlog::level::err      ? "error: "
         : level == spdlog::level::critical ? "fatal: "
                                            : "";
}

// The message, its control characters escaped as \xHH: whatever a caller passed in, a log line
// stays one line (CR, LF and the like could otherwise forge lines for log readers such as
// pflogsumm or fail2ban, or drive a terminal).
void AppendSafe(std::string_view payload, std::string& dest) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (const char ch : payload) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c != 0x7f) {
      dest.push_back(ch);
    } else {
      const char escaped[] = {'\\', 'x', kHex[c >> 4], kHex[c & 15]};
      dest.append(escaped, 4);
    }
  }
}

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

namespace {

// The one sink of every service's logger: the loggers stay, a reload changes where the sink
// writes (under its mutex), so no thread ever logs through a logger being replaced.
class MailLogSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  void Configure(const std::string& master_tag, const LogOptions& options) {
    std::lock_guard<std::mutex> lock(mutex_);
    master_tag_ = master_tag;
    syslog_ = options.syslog;
    facility_ = Facility(options.syslog_facility);
    ident_.clear();  // openlog again with the new facility
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    // The first label, as syslog daemons write it.
    hostname_ = std::string(host).substr(0, std::string_view(host).find('.'));
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const std::string_view name(msg.logger_name.data(), msg.logger_name.size());
    const std::string tag = name == "master" ? master_tag_ : "danerelay/" + std::string(name);
    std::string text(LevelPrefix(msg.level));
    AppendSafe(std::string_view(msg.payload.data(), msg.payload.size()), text);
    if (syslog_) {
      // syslog(3) takes its tag from openlog, which keeps the pointer: ident_ lives on until
      // the next openlog. journald reads the same socket.
      if (ident_ != tag) {
        ident_ = tag;
        openlog(ident_.c_str(), LOG_PID | LOG_NDELAY, facility_);
      }
      syslog(Priority(msg.level), "%s", text.c_str());
      return;
    }
    // RFC 3339 in UTC, as rsyslog's RFC 3339 template writes a file: the zone is part of the
    // time, and pflogsumm and fail2ban read it.
    const auto since_epoch = msg.time.time_since_epoch();
    const std::time_t secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch).count();
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch).count() % 1000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char when[80];
    std::snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(millis));
    std::string line = std::string(when) + " " + hostname_ + " " + tag + "[" +
                       std::to_string(getpid()) + "]: " + text + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }

 private:
  static int Priority(spdlog::level::level_enum level) {
    switch (level) {
      case spdlog::level::trace:
      case spdlog::level::debug:
        return LOG_DEBUG;
      case spdlog::level::info:
        return LOG_INFO;
      case spdlog::level::warn:
        return LOG_WARNING;
      case spdlog::level::err:
        return LOG_ERR;
      default:
        return LOG_CRIT;
    }
  }

  std::string master_tag_ = "danerelay/master";
  bool syslog_ = false;
  int facility_ = LOG_MAIL;
  std::string ident_;
  std::string hostname_ = "localhost";
};

struct Loggers {
  std::shared_ptr<MailLogSink> sink = std::make_shared<MailLogSink>();
  std::array<std::shared_ptr<spdlog::logger>, kServiceNames.size()> by_service;
  Loggers() {
    for (size_t i = 0; i < kServiceNames.size(); ++i) {
      by_service[i] = std::make_shared<spdlog::logger>(kServiceNames[i], sink);
      by_service[i]->flush_on(spdlog::level::trace);
    }
  }
};

Loggers& TheLoggers() {
  static Loggers loggers;  // never destroyed before the last line: a function-local static
  return loggers;
}

}  // namespace

spdlog::logger& Log(Service service) {
  return *TheLoggers().by_service[static_cast<size_t>(service)];
}

std::function<void(std::exception_ptr)> LogIfBug(Service service, std::string what) {
  return [service, what = std::move(what)](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      Log(service).error("BUG: {} ended with an exception: {}", what, ex.what());
    } catch (...) {
      Log(service).error("BUG: {} ended with an exception that is not a std::exception", what);
    }
  };
}

void SetUpLogging(const std::string& master_tag, const LogOptions& options) {
  Loggers& loggers = TheLoggers();
  loggers.sink->Configure(master_tag, options);
  for (auto& logger : loggers.by_service) {
    logger->set_level(static_cast<spdlog::level::level_enum>(options.level));
  }
  spdlog::set_default_logger(loggers.by_service[0]);
}

}  // namespace danerelay::relay
