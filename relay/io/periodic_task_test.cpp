#include "relay/io/periodic_task.hpp"

#include <gtest/gtest.h>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include "relay/io/connection.hpp"

namespace danerelay::relay {
namespace {

using namespace std::chrono_literals;
using Wait = std::optional<std::chrono::steady_clock::duration>;

TEST(PeriodicTaskTest, RunsUntilTheRoundSaysStop) {
  asio::io_context io;
  PeriodicTask task(io, "test");
  int rounds = 0;
  task.Start([&]() -> asio::awaitable<Wait> {
    ++rounds;
    co_return rounds < 3 ? Wait(1ms) : std::nullopt;
  });
  EXPECT_TRUE(task.running());
  task.Start([&]() -> asio::awaitable<Wait> { co_return std::nullopt; });  // running: ignored
  io.run_for(5s);
  EXPECT_EQ(rounds, 3);
  EXPECT_FALSE(task.running());
}

TEST(PeriodicTaskTest, PokeCutsTheWaitShortAndStopEndsIt) {
  asio::io_context io;
  PeriodicTask task(io, "test");
  int rounds = 0;
  asio::steady_timer poke(io);
  task.Start([&]() -> asio::awaitable<Wait> {
    if (++rounds == 1) {
      poke.expires_after(20ms);  // while the loop waits its hour
      poke.async_wait([&](std::error_code) { task.Poke(); });
    } else {
      asio::post(io, [&] { task.Stop(); });  // during the second wait
    }
    co_return Wait(1h);
  });
  const auto start = std::chrono::steady_clock::now();
  io.run_for(30s);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);  // io ran out of work: the loop ended
  EXPECT_EQ(rounds, 2);  // the first, and the one the poke started
  EXPECT_FALSE(task.running());
  EXPECT_TRUE(task.stopping());
  task.Start([&]() -> asio::awaitable<Wait> { co_return std::nullopt; });  // stopped: for good
  EXPECT_FALSE(task.running());
}

}  // namespace
}  // namespace danerelay::relay
