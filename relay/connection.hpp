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

namespace danerelay::relay {

inline constexpr auto kUseTuple = asio::experimental::as_tuple(asio::use_awaitable);

// Armed before an operation; when it fires it cancels the socket's operations, which then
// complete with operation_aborted, reported as timed_out. A timer that has already fired cannot
// be cancelled (its handler is queued), so the handler checks a generation number in state it
// shares with the Deadline, and does nothing once the Deadline is re-armed, disarmed or gone.
class Deadline {
 public:
  explicit Deadline(asio::ip::tcp::socket& socket)
      : state_(std::make_shared<State>(State{&socket})), timer_(socket.get_executor()) {}
  ~Deadline() { state_->socket = nullptr; }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  void Arm(std::chrono::steady_clock::duration d) {
    state_->expired = false;
    const std::uint64_t generation = ++state_->generation;
    timer_.expires_after(d);
    timer_.async_wait([state = state_, generation](std::error_code ec) {
      if (ec || !state->socket || state->generation != generation) return;
      state->expired = true;
      state->socket->cancel(ec);
    });
  }
  void Disarm() {
    ++state_->generation;
    timer_.cancel();
  }
  bool expired() const { return state_->expired; }

 private:
  struct State {
    asio::ip::tcp::socket* socket;
    std::uint64_t generation = 0;
    bool expired = false;
  };
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
    deadline.Arm(timeout);
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
