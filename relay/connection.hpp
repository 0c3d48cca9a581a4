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
#include <memory>
#include <string_view>
#include <tuple>

namespace danerelay::relay {

inline constexpr auto kUseTuple = asio::experimental::as_tuple(asio::use_awaitable);

// Armed before an operation; when it fires it cancels the socket's operations, which then
// complete with operation_aborted, reported as timed_out.
class Deadline {
 public:
  explicit Deadline(asio::ip::tcp::socket& socket)
      : socket_(socket), timer_(socket.get_executor()) {}
  void Arm(std::chrono::steady_clock::duration d) {
    expired_ = false;
    timer_.expires_after(d);
    timer_.async_wait([this](std::error_code ec) {
      if (ec) return;  // re-armed or destroyed: `this` may be gone, so touch nothing
      expired_ = true;
      socket_.cancel(ec);
    });
  }
  void Disarm() { timer_.cancel(); }
  bool expired() const { return expired_; }

 private:
  asio::ip::tcp::socket& socket_;
  asio::steady_timer timer_;
  bool expired_ = false;
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
