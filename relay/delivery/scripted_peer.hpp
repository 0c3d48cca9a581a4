#pragma once
// For tests only: an SMTP server on 127.0.0.1 (an ephemeral port) that plays a script, so that
// the delivery client can be driven over a real socket on the test's io_context.
//
// A script is one list of steps per connection, in the order the connections arrive. The first
// step of each is the greeting (no expected command); every later step names the command prefix
// it expects (compared case-insensitively) and the reply lines to send. A step that answers
// DATA with 354 makes the peer read the message up to the lone "." and then match "." against
// the next step, which holds the reply to the end of data. `close_after` drops the connection
// after the reply: STARTTLS answered 220 and then closed makes the client's handshake fail.
// `start_tls` makes the peer take the server side of a TLS handshake after the reply, with the
// context given to the constructor (its certificate), and go on with the script over TLS.
//
// What it records: per connection, each command line and each message as it came over the wire
// (still dot-stuffed, without the terminating "."). What went against the script (an unexpected
// command, a command after the script ended, a connection with no script left) is in
// `problems()`, and the connection is then closed.
//
// Stop() closes the listener and every connection, so that io.run()
// returns; every wait of a test is bounded by the client's timeouts and io.run_for.
#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/ssl.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <cctype>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace danerelay::relay {

struct PeerStep {
  std::string expect;              // command prefix; "" for the greeting, "." for end of data
  std::vector<std::string> reply;  // whole reply lines without CRLF: {"250-a", "250 b"}
  bool close_after = false;
  bool start_tls = false;  // after the reply: a TLS handshake as the server (RFC 3207 §4)
};
using PeerScript = std::vector<PeerStep>;  // one connection

struct PeerConnection {
  std::vector<std::string> commands;  // every line received outside DATA, in order
  std::vector<std::string> messages;  // as sent, dot-stuffed, up to the terminating "."
  std::string tls_error;              // the server-side handshake failed: why
};

// Undoes RFC 5321 §4.5.2 transparency on a message as recorded.
inline std::string Unstuff(std::string_view wire) {
  std::string out;
  bool line_start = true;
  for (char c : wire) {
    if (!(line_start && c == '.')) out += c;
    line_start = c == '\n';
  }
  return out;
}

class ScriptedPeer {
 public:
  // `tls_context`: the server side for steps with start_tls (certificate and key loaded).
  ScriptedPeer(asio::io_context& io, std::vector<PeerScript> scripts,
               std::shared_ptr<asio::ssl::context> tls_context = nullptr)
      : state_(std::make_shared<State>(io, std::move(scripts))) {
    state_->tls_context = std::move(tls_context);
    using asio::ip::tcp;
    const tcp::endpoint any_port(asio::ip::make_address("127.0.0.1"), 0);
    state_->acceptor.open(any_port.protocol());
    state_->acceptor.set_option(tcp::acceptor::reuse_address(true));
    state_->acceptor.bind(any_port);
    state_->acceptor.listen();
    port_ = state_->acceptor.local_endpoint().port();
    auto state = state_;
    asio::co_spawn(io, Accept(state), [state](std::exception_ptr e) { Report(*state, e); });
  }
  ~ScriptedPeer() { Stop(); }
  ScriptedPeer(const ScriptedPeer&) = delete;
  ScriptedPeer& operator=(const ScriptedPeer&) = delete;

  std::uint16_t port() const { return port_; }
  const std::vector<PeerConnection>& connections() const { return state_->connections; }
  const std::vector<std::string>& problems() const { return state_->problems; }

  void Stop() {
    std::error_code ignored;
    state_->acceptor.close(ignored);
    for (auto& s : state_->sockets) s->close(ignored);
  }

 private:
  using Socket = asio::ip::tcp::socket;
  static constexpr auto kTuple = asio::experimental::as_tuple(asio::use_awaitable);

  struct State {
    State(asio::io_context& io, std::vector<PeerScript> s) : acceptor(io), scripts(std::move(s)) {}
    asio::ip::tcp::acceptor acceptor;
    std::shared_ptr<asio::ssl::context> tls_context;
    std::vector<PeerScript> scripts;
    std::vector<PeerConnection> connections;
    std::vector<std::shared_ptr<Socket>> sockets;
    std::vector<std::string> problems;
  };

  static void Report(State& state, std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      state.problems.push_back(std::string("peer threw: ") + x.what());
    } catch (...) {
      state.problems.push_back("peer threw");
    }
  }

  static bool StartsWith(std::string_view line, std::string_view prefix) {
    if (line.size() < prefix.size()) return false;
    for (size_t i = 0; i < prefix.size(); ++i) {
      if (std::toupper(static_cast<unsigned char>(line[i])) !=
          std::toupper(static_cast<unsigned char>(prefix[i]))) {
        return false;
      }
    }
    return true;
  }

  static asio::awaitable<void> Accept(std::shared_ptr<State> state) {
    for (;;) {
      auto socket = std::make_shared<Socket>(state->acceptor.get_executor());
      auto [ec] = co_await state->acceptor.async_accept(*socket, kTuple);
      if (ec) co_return;  // Stop()
      state->sockets.push_back(socket);
      const size_t index = state->connections.size();
      state->connections.emplace_back();
      if (index >= state->scripts.size()) {
        state->problems.push_back("a connection with no script left");
        std::error_code ignored;
        socket->close(ignored);
        continue;
      }
      asio::co_spawn(state->acceptor.get_executor(), Session(state, socket, index),
                     [state](std::exception_ptr e) { Report(*state, e); });
    }
  }

  static asio::awaitable<void> Session(std::shared_ptr<State> state, std::shared_ptr<Socket> socket,
                                       size_t index) {
    const PeerScript& script = state->scripts[index];
    std::string buffer;
    std::unique_ptr<asio::ssl::stream<Socket&>> tls;  // after STARTTLS
    // Reads one line without its CRLF; false when the connection is gone.
    auto read_line = [&](std::string& line) -> asio::awaitable<bool> {
      auto [ec, n] =
          tls ? co_await asio::async_read_until(*tls, asio::dynamic_buffer(buffer), "\r\n", kTuple)
              : co_await asio::async_read_until(*socket, asio::dynamic_buffer(buffer), "\r\n",
                                                kTuple);
      if (ec) co_return false;
      line = buffer.substr(0, n - 2);
      buffer.erase(0, n);
      co_return true;
    };
    // Arguments are named: GCC 12 destroys temporaries that live across a co_await twice.
    auto send = [&](const std::vector<std::string>& lines) -> asio::awaitable<bool> {
      std::string wire;
      for (const auto& l : lines) wire += l + "\r\n";
      auto [ec, n] = tls ? co_await asio::async_write(*tls, asio::buffer(wire), kTuple)
                         : co_await asio::async_write(*socket, asio::buffer(wire), kTuple);
      (void)n;
      co_return !ec;
    };
    std::error_code ignored;
    for (size_t step = 0; step < script.size(); ++step) {
      const PeerStep& s = script[step];
      if (step > 0) {
        std::string line;
        if (s.expect == "." && !script[step - 1].reply.empty() &&
            script[step - 1].reply.back().starts_with("354")) {
          // The message, line by line up to the lone ".".
          std::string message;
          for (;;) {
            if (!co_await read_line(line)) co_return;
            if (line == ".") break;
            message += line + "\r\n";
          }
          state->connections[index].messages.push_back(std::move(message));
        } else {
          if (!co_await read_line(line)) co_return;
          state->connections[index].commands.push_back(line);
          if (!StartsWith(line, s.expect)) {
            state->problems.push_back("connection " + std::to_string(index) + " step " +
                                      std::to_string(step) + ": expected \"" + s.expect +
                                      "\", got \"" + line + "\"");
            const std::vector<std::string> refusal{"503 5.5.1 not in the script"};
            (void)co_await send(refusal);
            socket->close(ignored);
            co_return;
          }
        }
      }
      if (!co_await send(s.reply)) co_return;
      if (s.close_after) {
        socket->close(ignored);
        co_return;
      }
      if (s.start_tls) {
        if (!state->tls_context) {
          state->problems.push_back("start_tls in the script but no TLS context");
          socket->close(ignored);
          co_return;
        }
        buffer.clear();  // RFC 3207 §4: nothing sent before TLS counts after it
        tls = std::make_unique<asio::ssl::stream<Socket&>>(*socket, *state->tls_context);
        auto [ec] = co_await tls->async_handshake(asio::ssl::stream_base::server, kTuple);
        if (ec) {
          state->connections[index].tls_error = ec.message();
          socket->close(ignored);
          co_return;
        }
      }
    }
    // The script is over: anything more is a problem, the end of the connection is not.
    std::string line;
    if (co_await read_line(line)) {
      state->connections[index].commands.push_back(line);
      state->problems.push_back("connection " + std::to_string(index) + ": after the script: \"" +
                                line + "\"");
      const std::vector<std::string> bye{"421 4.3.0 end of script"};
      (void)co_await send(bye);
    }
    socket->close(ignored);
  }

  std::shared_ptr<State> state_;
  std::uint16_t port_ = 0;
};

}  // namespace danerelay::relay
