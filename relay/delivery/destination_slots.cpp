#include "relay/delivery/destination_slots.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>

namespace danerelay::relay {

DestinationSlots::~DestinationSlots() {
  *alive_ = false;
  for (auto& t : lowering_ends_) t->cancel();
}

void DestinationSlots::SetLimits(std::uint32_t limit, std::map<std::string, std::uint32_t> own) {
  limit_ = limit;
  own_ = std::move(own);
  WakeAll();
}

void DestinationSlots::WakeAll() {
  for (auto& [domain, waiting] : waiters_) {
    for (auto& w : waiting) w->cancel();
  }
  waiters_.clear();
}

std::uint32_t DestinationSlots::LimitOf(const std::string& domain) const {
  const auto it = own_.find(domain);
  const std::uint32_t limit = it == own_.end() ? limit_ : it->second;
  const auto lowered = LoweredOf(domain);
  return lowered ? std::min(limit, *lowered) : limit;
}

std::optional<std::uint32_t> DestinationSlots::LoweredOf(const std::string& site) const {
  const auto it = lowered_.find(site);
  if (it == lowered_.end()) return std::nullopt;
  const auto now = std::chrono::steady_clock::now();
  std::optional<std::uint32_t> lowest;
  for (const auto& l : it->second) {
    if (l.until > now && (!lowest || l.limit < *lowest)) lowest = l.limit;
  }
  return lowest;
}

void DestinationSlots::Lower(const std::string& site, std::uint32_t limit,
                             std::chrono::seconds length) {
  const auto now = std::chrono::steady_clock::now();
  const auto until = now + length;
  auto& in_force = lowered_[site];
  std::erase_if(in_force, [now](const Lowered& l) { return l.until <= now; });
  // One that is as low and lasts as long already covers it.
  for (const auto& l : in_force) {
    if (l.limit <= limit && l.until >= until) return;
  }
  in_force.push_back({limit, until});
  auto end = std::make_shared<asio::steady_timer>(io_, until);
  lowering_ends_.push_back(end);
  end->async_wait([this, alive = alive_, site, end](const asio::error_code&) {
    if (!*alive) return;  // the slots are gone
    std::erase(lowering_ends_, end);
    if (auto it = lowered_.find(site); it != lowered_.end()) {
      const auto ended = std::chrono::steady_clock::now();
      std::erase_if(it->second, [ended](const Lowered& l) { return l.until <= ended; });
      if (it->second.empty()) lowered_.erase(it);
    }
    WakeAll();
  });
}

asio::awaitable<void> DestinationSlots::Acquire(std::string domain) {
  while (in_use_[domain] >= LimitOf(domain)) {
    auto waiter = std::make_shared<asio::steady_timer>(io_, asio::steady_timer::time_point::max());
    waiters_[domain].push_back(waiter);
    // Woken by Release (the timer is cancelled); the loop checks again.
    co_await waiter->async_wait(asio::experimental::as_tuple(asio::use_awaitable));
  }
  ++in_use_[domain];
}

void DestinationSlots::Release(const std::string& domain) {
  if (--in_use_[domain] == 0) in_use_.erase(domain);
  auto it = waiters_.find(domain);
  if (it == waiters_.end()) return;
  it->second.front()->cancel();
  it->second.pop_front();
  if (it->second.empty()) waiters_.erase(it);
}

bool DestinationSlots::Free(const std::string& domain) const {
  const auto it = in_use_.find(domain);
  return (it == in_use_.end() || it->second < LimitOf(domain)) && Waiting(domain) == 0;
}

std::map<std::string, DestinationSlots::Use> DestinationSlots::InUse() const {
  std::map<std::string, Use> out;
  for (const auto& [site, n] : in_use_) out[site] = {n, LimitOf(site), Waiting(site)};
  for (const auto& [site, w] : waiters_) out[site] = {out[site].in_use, LimitOf(site), w.size()};
  return out;
}

std::uint32_t DestinationSlots::InUseOf(const std::string& site) const {
  const auto it = in_use_.find(site);
  return it == in_use_.end() ? 0 : it->second;
}

std::size_t DestinationSlots::Waiting(const std::string& domain) const {
  const auto it = waiters_.find(domain);
  return it == waiters_.end() ? 0 : it->second.size();
}

}  // namespace danerelay::relay
