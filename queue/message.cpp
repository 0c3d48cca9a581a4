#include "queue/message.hpp"

#include <array>
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
