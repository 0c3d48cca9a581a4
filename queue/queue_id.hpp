#pragma once
// Queue IDs: unique, and their byte order is arrival order.
//
// An ID is 14 characters of Crockford base32 (digits, then capitals without I, L, O, U, so that
// byte order equals numeric order): 11 for the microseconds since the epoch, 3 for a sequence
// number that keeps IDs made in the same microsecond (or after the clock stepped back) distinct
// and increasing. Uniqueness across restarts rests on the clock plus the store's primary key.
#include <cstdint>
#include <mutex>
#include <string>

#include "queue/message.hpp"

namespace danerelay::queue {

class QueueIdGenerator {
 public:
  // Thread-safe. `now` is injected so tests can make collisions on purpose.
  std::string Next(TimePoint now);

 private:
  std::mutex mu_;
  std::int64_t last_micros_ = 0;
  std::uint32_t sequence_ = 0;
};

// The arrival time encoded in an ID, or nullopt when `id` is not one of ours.
std::optional<TimePoint> QueueIdTime(std::string_view id);

}  // namespace danerelay::queue
