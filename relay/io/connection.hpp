#pragma once
// A TCP connection that may switch to TLS mid-stream (STARTTLS), with the one timeout helper
// that every read, write and handshake goes through. Shared by the SMTP server and client.
#include <asio/awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>
#include <tuple>
#include <vector>

namespace danerelay::relay {

inline constexpr auto kUseTuple = asio::experimental::as_tuple(asio::use_awaitable);

// Armed before an operation; when it fires it cancels the socket's operations, which then
// complete with operation_aborted, reported as timed_out.
//
// The timer is lazy, because re-arming a timer is a system call (timerfd_settime) and a busy
// connection arms one for every read and write: Arm() only records when the operation is due,
// and moves the timer only when that is earlier than where it stands; Disarm() only marks the
// Deadline idle. When the timer fires, its handler judges by the recorded state, not by the
// timer: idle, nothing; not yet due (re-armed since), wait again until due; due, expire. A
// handler that was already queued when the Deadline was re-armed or disarmed judges the same
// way, so a stale firing can never cancel a later operation.
class Deadline {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Deadline(asio::ip::tcp::socket& socket)
      : state_(std::make_shared<State>(State{&socket})), timer_(socket.get_executor()) {}
  ~Deadline() { state_->socket = nullptr; }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  void Arm(Clock::duration d) { ArmAt(Clock::now() + d); }
  // Due at a fixed time rather than after a duration: a deadline for a whole command line or
  // message that several reads share (a client trickling bytes gains nothing by each read).
  void ArmAt(Clock::time_point at) {
    state_->expired = false;
    state_->active = true;
    state_->due = at;
    if (state_->due < state_->timer_at) Wait(timer_, state_, state_->due);
  }
  void Disarm() { state_->active = false; }
  bool expired() const { return state_->expired; }

 private:
  struct State {
    asio::ip::tcp::socket* socket;
    bool active = false;
    bool expired = false;
    Clock::time_point due{};
    Clock::time_point timer_at = Clock::time_point::max();  // max: no wait pending
  };

  // The timer lives as long as the Deadline; its handler holds only the shared state, and the
  // state's socket pointer is cleared when the Deadline (and with it the timer) goes.
  static void Wait(asio::steady_timer& timer, std::shared_ptr<State> state, Clock::time_point at) {
    state->timer_at = at;
    timer.expires_at(at);  // cancels a later wait: its handler sees operation_aborted
    timer.async_wait([state, &timer](std::error_code ec) {
      if (ec || !state->socket) return;  // moved earlier (a new wait is pending), or gone
      state->timer_at = Clock::time_point::max();
      if (!state->active) return;
      if (Clock::now() < state->due) return Wait(timer, state, state->due);
      state->expired = true;
      state->socket->cancel(ec);
    });
  }

  std::shared_ptr<State> state_;
  asio::steady_timer timer_;
};

struct Connection {
  explicit Connection(asio::ip::tcp::socket s) : socket(std::move(s)), deadline(socket) {}
  asio::ip::tcp::socket socket;
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket&>> tls;
  Deadline deadline;

  asio::awaitable<std::tuple<std::error_code, size_t>> ReadSome(char* buf, size_t size,
                                                                std::chrono::seconds timeout) {
    const auto due = Deadline::Clock::now() + timeout;  // named: see dns/resolver.hpp (GCC 12)
    co_return co_await ReadSomeUntil(buf, size, due);
  }

  // As ReadSome, due at `due` (a time already past times the read out at once).
  asio::awaitable<std::tuple<std::error_code, size_t>> ReadSomeUntil(
      char* buf, size_t size, Deadline::Clock::time_point due) {
    deadline.ArmAt(due);
    auto result = tls ? co_await tls->async_read_some(asio::buffer(buf, size), kUseTuple)
                      : co_await socket.async_read_some(asio::buffer(buf, size), kUseTuple);
    deadline.Disarm();
    if (deadline.expired()) std::get<0>(result) = asio::error::timed_out;
    co_return result;
  }

  asio::awaitable<std::error_code> Write(std::string_view data, std::chrono::seconds timeout) {
    deadline.Arm(timeout);
    auto [ec, n] = tls ? co_await asio::async_write(*tls, asio::buffer(data), kUseTuple)
                       : co_await asio::async_write(socket, asio::buffer(data), kUseTuple);
    deadline.Disarm();
    if (deadline.expired()) ec = asio::error::timed_out;
    co_return ec;
  }

  // Writes `pieces` in order as one gather write (no copy into one buffer).
  asio::awaitable<std::error_code> WritePieces(const std::vector<std::string_view>& pieces,
                                               std::chrono::seconds timeout) {
    std::vector<asio::const_buffer> buffers;
    buffers.reserve(pieces.size());
    for (auto p : pieces) buffers.emplace_back(p.data(), p.size());
    deadline.Arm(timeout);
    auto [ec, n] = tls ? co_await asio::async_write(*tls, buffers, kUseTuple)
                       : co_await asio::async_write(socket, buffers, kUseTuple);
    deadline.Disarm();
    if (deadline.expired()) ec = asio::error::timed_out;
    co_return ec;
  }

  // Wraps the socket in TLS and runs the handshake. `prepare` sets up the SSL object first.
  template <typename Prepare>
  asio::awaitable<std::error_code> StartTls(asio::ssl::context& ctx,
                                            asio::ssl::stream_base::handshake_type type,
                                            std::chrono::seconds timeout, Prepare prepare) {
    tls = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(socket, ctx);
    prepare(tls->native_handle());
    deadline.Arm(timeout);
    auto [ec] = co_await tls->async_handshake(type, kUseTuple);
    deadline.Disarm();
    if (deadline.expired()) ec = asio::error::timed_out;
    co_return ec;
  }

  // A polite end: TLS close_notify (bounded), then the socket.
  asio::awaitable<void> Close() {
    if (tls) {
      deadline.Arm(std::chrono::seconds(2));
      co_await tls->async_shutdown(kUseTuple);
      deadline.Disarm();
    }
    std::error_code ec;
    socket.close(ec);
  }
};

}  // namespace danerelay::relay
