#pragma once
// The skeleton the background services share (the resolver's self-check, the pre-flight check,
// the TLS report sender): one coroutine that runs a round, then waits as long as the round asks,
// until it is stopped. Poke() cuts the wait short (a reload: work with the new settings now).
//
// Lifetime: the loop holds the task's state, and whatever the round captures (a service holds
// itself alive that way while its loop runs); Stop() ends the loop at its next step, also from
// the service's destructor. Used on the io thread only.
#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace danerelay::relay {

class PeriodicTask {
 public:
  // One round; returns how long to wait before the next one, nullopt to end the loop (a
  // service that is turned off, or runs once).
  using Round =
      std::function<asio::awaitable<std::optional<std::chrono::steady_clock::duration>>()>;

  // `what` names the task in the log if its coroutine ends with an exception (a bug).
  PeriodicTask(asio::io_context& io, std::string what);
  ~PeriodicTask();
  PeriodicTask(const PeriodicTask&) = delete;
  PeriodicTask& operator=(const PeriodicTask&) = delete;

  // Runs `round` now and then as it asks; nothing while the loop runs already.
  void Start(Round round);
  void Poke();
  void Stop();
  bool running() const;
  bool stopping() const;

 private:
  struct State;
  static asio::awaitable<void> Loop(std::shared_ptr<State> s, Round round);
  std::shared_ptr<State> state_;
};

}  // namespace danerelay::relay
