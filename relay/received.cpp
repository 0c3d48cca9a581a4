#include "relay/received.hpp"

#include <fmt/format.h>

#include <ctime>

namespace danerelay::relay {

std::string FormatRfc5322Date(queue::TimePoint time) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t t = queue::Clock::to_time_t(time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{}, {:02} {} {} {:02}:{:02}:{:02} +0000", kDays[tm.tm_wday], tm.tm_mday,
                     kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string FormatReceived(const ReceivedInfo& info) {
  // RFC 5321 §4.1.3: IPv6 address literals carry the "IPv6:" tag.
  const bool v6 = info.client_address.find(':') != std::string::npos;
  std::string out = fmt::format("Received: from {} (unknown [{}{}])\r\n", info.helo,
                                v6 ? "IPv6:" : "", info.client_address);
  if (!info.tls.empty()) out += fmt::format("\t(using {})\r\n", info.tls);
  out +=
      fmt::format("\tby {} (danerelay) with {} id {}", info.hostname, info.protocol, info.queue_id);
  if (!info.for_recipient.empty()) out += fmt::format("\r\n\tfor <{}>", info.for_recipient);
  out += fmt::format("; {}\r\n", FormatRfc5322Date(info.time));
  return out;
}

}  // namespace danerelay::relay
