#include "relay/io/periodic_task.hpp"

#include <asio/co_spawn.hpp>
#include <asio/steady_timer.hpp>

#include "relay/daemon/logging.hpp"
#include "relay/io/connection.hpp"

namespace danerelay::relay {

struct PeriodicTask::State {
  State(asio::io_context& i, std::string w) : io(i), timer(i), what(std::move(w)) {}
  asio::io_context& io;
  asio::steady_timer timer;
  std::string what;
  bool running = false;
  bool stopping = false;
};

PeriodicTask::PeriodicTask(asio::io_context& io, std::string what)
    : state_(std::make_shared<State>(io, std::move(what))) {}

PeriodicTask::~PeriodicTask() { Stop(); }

void PeriodicTask::Start(Round round) {
  if (state_->running || state_->stopping) return;
  state_->running = true;  // from here, so that a second Start before the loop runs is a no-op
  asio::co_spawn(state_->io, Loop(state_, std::move(round)),
                 LogIfBug(Service::kMaster, state_->what));
}

void PeriodicTask::Poke() { state_->timer.cancel(); }

void PeriodicTask::Stop() {
  state_->stopping = true;
  state_->timer.cancel();
}

bool PeriodicTask::running() const { return state_->running; }
bool PeriodicTask::stopping() const { return state_->stopping; }

asio::awaitable<void> PeriodicTask::Loop(std::shared_ptr<State> s, Round round) {
  struct Running {  // `running` ends with the loop, also when a round throws (a bug)
    State& state;
    ~Running() { state.running = false; }
  } running{*s};
  while (!s->stopping) {
    const auto wait = co_await round();
    if (s->stopping || !wait) break;
    s->timer.expires_after(*wait);
    co_await s->timer.async_wait(kUseTuple);
  }
}

}  // namespace danerelay::relay
