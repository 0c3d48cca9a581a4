#include "queue/queue_id.hpp"

#include <string_view>

namespace danerelay::queue {
namespace {

constexpr std::string_view kAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr int kTimeDigits = 11;  // 32^11 µs is about 1100 years
constexpr int kSequenceDigits = 3;
constexpr std::uint32_t kSequenceLimit = 32 * 32 * 32;

void AppendBase32(std::string& out, std::uint64_t value, int digits) {
  std::string part(static_cast<size_t>(digits), '0');
  for (int i = digits - 1; i >= 0; --i) {
    part[static_cast<size_t>(i)] = kAlphabet[value % 32];
    value /= 32;
  }
  out += part;
}

}  // namespace

std::string QueueIdGenerator::Next(TimePoint now) {
  const std::int64_t micros =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  std::int64_t use_micros;
  std::uint32_t use_sequence;
  {
    std::lock_guard lock(mu_);
    if (micros > last_micros_) {
      last_micros_ = micros;
      sequence_ = 0;
    } else if (++sequence_ >= kSequenceLimit) {
      // Same microsecond (or the clock went back) too often: borrow the next microsecond.
      ++last_micros_;
      sequence_ = 0;
    }
    use_micros = last_micros_;
    use_sequence = sequence_;
  }
  std::string id;
  id.reserve(kTimeDigits + kSequenceDigits);
  AppendBase32(id, static_cast<std::uint64_t>(use_micros), kTimeDigits);
  AppendBase32(id, use_sequence, kSequenceDigits);
  return id;
}

std::optional<TimePoint> QueueIdTime(std::string_view id) {
  if (id.size() != kTimeDigits + kSequenceDigits) return std::nullopt;
  std::uint64_t micros = 0;
  for (size_t i = 0; i < id.size(); ++i) {
    const auto pos = kAlphabet.find(id[i]);
    if (pos == std::string_view::npos) return std::nullopt;
    if (i < kTimeDigits) micros = micros * 32 + pos;
  }
  return TimePoint(std::chrono::microseconds(micros));
}

}  // namespace danerelay::queue
