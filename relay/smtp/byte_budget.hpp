#pragma once
// The bytes of message data all SMTP sessions together may hold in memory ([limits]
// max_inflight_bytes). Each session takes what a DATA line needs before keeping it and gives
// everything back when its message is committed or dropped; a session that finds the budget
// spent discards the rest of its message and answers 452 4.3.1, so 200 clients sending 25 MB
// each cannot exhaust the machine's memory. Used on the daemon's one protocol thread.
#include <cstdint>

namespace danerelay::relay {

class ByteBudget {
 public:
  explicit ByteBudget(std::uint64_t limit) : limit_(limit) {}
  bool Take(std::uint64_t n) {
    if (n > limit_ - used_) return false;
    used_ += n;
    return true;
  }
  void Give(std::uint64_t n) { used_ -= n <= used_ ? n : used_; }
  void SetLimit(std::uint64_t limit) { limit_ = limit < used_ ? used_ : limit; }
  std::uint64_t used() const { return used_; }

 private:
  std::uint64_t limit_;
  std::uint64_t used_ = 0;
};

}  // namespace danerelay::relay
