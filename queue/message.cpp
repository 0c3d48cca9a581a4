#include "queue/message.hpp"

#include <fmt/format.h>

#include <array>
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
