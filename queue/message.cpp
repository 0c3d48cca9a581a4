#include "queue/message.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <ctime>
#include <utility>

namespace danerelay::queue {

std::string NotifyToString(unsigned notify) {
  static constexpr std::array<std::pair<unsigned, const char*>, 4> kNames = {{
      {kNotifyNever, "NEVER"},
      {kNotifySuccess, "SUCCESS"},
      {kNotifyFailure, "FAILURE"},
      {kNotifyDelay, "DELAY"},
  }};
  std::string out;
  for (const auto& [bit, name] : kNames) {
    if ((notify & bit) == 0) continue;
    if (!out.empty()) out += ',';
    out += name;
  }
  return out;
}

std::string FormatRfc5322Date(TimePoint t) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t secs = Clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{}, {:02} {} {} {:02}:{:02}:{:02} +0000", kDays[tm.tm_wday], tm.tm_mday,
                     kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string Printable(std::string_view text, std::size_t max_size) {
  std::string out;
  const bool cut = text.size() > max_size;
  if (cut) text = text.substr(0, max_size > 3 ? max_size - 3 : 0);
  out.reserve(text.size() + 3);
  for (char c : text) out += (c >= 32 && c <= 126) ? c : '?';
  if (cut) out += "...";
  return out;
}

namespace {

// "Name:" at the start of a header line, the name compared case-insensitively.
bool FieldNamed(std::string_view line, std::string_view name) {
  return line.size() > name.size() && line[name.size()] == ':' &&
         std::equal(name.begin(), name.end(), line.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) ==
                  std::tolower(static_cast<unsigned char>(b));
         });
}

}  // namespace

std::size_t CountHeaderFields(std::string_view content, std::string_view name) {
  std::size_t count = 0;
  std::size_t pos = 0;
  while (pos < content.size()) {
    const std::size_t eol = content.find("\r\n", pos);
    const std::string_view line =
        content.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    if (line.empty()) break;  // the end of the header section
    if (FieldNamed(line, name)) ++count;
    pos = eol == std::string_view::npos ? content.size() : eol + 2;
  }
  return count;
}

std::string HeaderValue(std::string_view content, std::string_view name) {
  std::size_t pos = 0;
  while (pos < content.size()) {
    const std::size_t eol = content.find("\r\n", pos);
    const std::string_view line =
        content.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    if (line.empty()) break;  // the end of the header section
    const bool match = FieldNamed(line, name);
    pos = eol == std::string_view::npos ? content.size() : eol + 2;
    if (!match) continue;
    std::string value(line.substr(name.size() + 1));
    // Continuation lines (RFC 5322 §2.2.3) belong to the field.
    while (pos < content.size() && (content[pos] == ' ' || content[pos] == '\t')) {
      const std::size_t next = content.find("\r\n", pos);
      value +=
          content.substr(pos, next == std::string_view::npos ? std::string_view::npos : next - pos);
      pos = next == std::string_view::npos ? content.size() : next + 2;
    }
    const auto first = value.find_first_not_of(" \t");
    if (first == std::string::npos) return "";
    return value.substr(first, value.find_last_not_of(" \t") - first + 1);
  }
  return "";
}

std::string RecipientDomain(std::string_view address) {
  const auto at = address.rfind('@');
  std::string domain(at == std::string_view::npos ? "" : address.substr(at + 1));
  for (char& c : domain) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return domain;
}

std::string_view ToString(DsnRet ret) {
  switch (ret) {
    case DsnRet::kFull:
      return "FULL";
    case DsnRet::kHdrs:
      return "HDRS";
    case DsnRet::kUnspecified:
      break;
  }
  return "";
}

namespace {
constexpr std::array<std::pair<RecipientState, std::string_view>, 7> kStateNames = {{
    {RecipientState::kQueued, "queued"},
    {RecipientState::kAttempting, "attempting"},
    {RecipientState::kDelivered, "delivered"},
    {RecipientState::kDeferred, "deferred"},
    {RecipientState::kFailed, "failed"},
    {RecipientState::kExpired, "expired"},
    {RecipientState::kHeld, "held"},
}};
}  // namespace

std::string_view ToString(RecipientState state) {
  for (const auto& [s, name] : kStateNames) {
    if (s == state) return name;
  }
  return "unknown";
}

std::optional<RecipientState> RecipientStateFromString(std::string_view text) {
  for (const auto& [s, name] : kStateNames) {
    if (name == text) return s;
  }
  return std::nullopt;
}

}  // namespace danerelay::queue
