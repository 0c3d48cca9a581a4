#pragma once
// Per-destination concurrency (Postfix: default_destination_concurrency_limit): at most `limit`
// deliveries to one site at once; the others wait in arrival order for a slot.
#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace danerelay::relay {

class DestinationSlots {
 public:
  explicit DestinationSlots(asio::io_context& io) : io_(io) {}
  ~DestinationSlots();
  DestinationSlots(const DestinationSlots&) = delete;
  DestinationSlots& operator=(const DestinationSlots&) = delete;
  // `limit` for every site but those in `own` ([shaping.site."S"] connections). Deliveries
  // waiting for a slot check again under the new limits.
  void SetLimits(std::uint32_t limit, std::map<std::string, std::uint32_t> own = {});
  // Resumes once a slot for `domain` is held; give it back with Release.
  asio::awaitable<void> Acquire(std::string domain);
  void Release(const std::string& domain);
  // Whether Acquire would resume at once (a slot is free and nobody waits for one).
  bool Free(const std::string& domain) const;
  // Deliveries waiting in Acquire for a slot of `domain`.
  std::size_t Waiting(const std::string& domain) const;
  std::uint32_t LimitOf(const std::string& domain) const;
  // At most `limit` for `site` (if lower than its own) for `length` ([[shaping.on_reply]]
  // connections). Several in force at once: the lowest counts, each until its own end. When
  // one ends, waiting deliveries check again.
  void Lower(const std::string& site, std::uint32_t limit, std::chrono::seconds length);
  // The lowest lowered limit of `site` in force; nullopt: none.
  std::optional<std::uint32_t> LoweredOf(const std::string& site) const;
  // Each site with a slot in use or a delivery waiting for one (for queue stats).
  struct Use {
    std::uint32_t in_use = 0;
    std::uint32_t limit = 0;
    std::size_t waiting = 0;
  };
  std::map<std::string, Use> InUse() const;
  std::uint32_t InUseOf(const std::string& site) const;

 private:
  asio::io_context& io_;
  void WakeAll();
  std::uint32_t limit_ = 20;
  std::map<std::string, std::uint32_t> own_;
  struct Lowered {
    std::uint32_t limit = 0;
    std::chrono::steady_clock::time_point until;
  };
  std::map<std::string, std::vector<Lowered>> lowered_;
  // The timers that end lowered limits; cancelled on destruction, and their handlers touch
  // nothing once `alive_` is false.
  std::vector<std::shared_ptr<asio::steady_timer>> lowering_ends_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::map<std::string, std::uint32_t> in_use_;
  std::map<std::string, std::deque<std::shared_ptr<asio::steady_timer>>> waiters_;
};

}  // namespace danerelay::relay
