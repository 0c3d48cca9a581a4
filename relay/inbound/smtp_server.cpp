#include "relay/inbound/smtp_server.hpp"

#include <spdlog/spdlog.h>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/ssl.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <exception>
#include <list>
#include <unordered_map>

#include "relay/connection.hpp"
#include "relay/smtp/server_session.hpp"

namespace danerelay::relay {
namespace {

using asio::ip::tcp;

// Logs an exception that escaped a coroutine: that is a bug, never an expected failure.
void LogIfBug(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::critical("BUG: coroutine ended with an exception: {}", ex.what());
  }
}

std::string Endpoint(const tcp::endpoint& ep) {
  return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
}

}  // namespace

struct SmtpServer::Impl : std::enable_shared_from_this<Impl> {
  asio::io_context& io;
  ServerOptions options;
  queue::Committer& committer;
  queue::QueueIdGenerator& ids;

  struct Listener {
    ListenerOptions options;
    std::shared_ptr<asio::ssl::context> tls;
    std::unique_ptr<tcp::acceptor> acceptor;
  };
  std::list<Listener> listeners;
  std::unordered_map<std::string, std::uint32_t> per_client;
  std::uint32_t total = 0;
  ByteBudget budget{options.limits.max_inflight_bytes};
  bool stopping = false;
  std::function<void()> on_queued;

  Impl(asio::io_context& i, ServerOptions o, queue::Committer& c, queue::QueueIdGenerator& g)
      : io(i), options(std::move(o)), committer(c), ids(g) {}

  // Hands the message to the group committer and resumes when its commit has returned.
  // `message` is moved from. A reference, not a by-value parameter: see store_bridge.hpp.
  asio::awaitable<tl::expected<void, queue::StoreError>> Enqueue(queue::NewMessage& message) {
    using Result = tl::expected<void, queue::StoreError>;
    co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(Result)>(
        [this, &message](auto handler) {
          auto shared = std::make_shared<decltype(handler)>(std::move(handler));
          committer.Submit(std::move(message), [shared, ex = io.get_executor()](Result r) {
            asio::post(ex, [shared, r = std::move(r)]() mutable { (*shared)(std::move(r)); });
          });
        },
        asio::use_awaitable);
  }

  asio::awaitable<void> Accept(Listener& listener) {
    auto self = shared_from_this();
    for (;;) {
      auto [ec, socket] = co_await listener.acceptor->async_accept(kUseTuple);
      if (stopping) co_return;
      if (ec) {
        spdlog::warn("accept on {}:{}: {}", listener.options.address, listener.options.port,
                     ec.message());
        continue;
      }
      asio::co_spawn(io, Serve(std::move(socket), listener), LogIfBug);
    }
  }

  asio::awaitable<void> Serve(tcp::socket socket, Listener& listener) {
    auto self = shared_from_this();
    std::error_code ec;
    const tcp::endpoint peer = socket.remote_endpoint(ec);
    if (ec) co_return;
    const std::string client_ip =
        peer.address().is_v6() && peer.address().to_v6().is_v4_mapped()
            ? asio::ip::make_address_v4(asio::ip::v4_mapped, peer.address().to_v6()).to_string()
            : peer.address().to_string();
    const std::string client = "unknown" + Endpoint(peer);
    Connection conn(std::move(socket));

    // Connection limits (Postfix: anvil's smtpd_client_connection_count_limit).
    std::uint32_t& mine = per_client[client_ip];
    if (total >= options.limits.max_connections ||
        mine >= options.limits.max_connections_per_client) {
      const bool per_ip = total < options.limits.max_connections;
      spdlog::warn("warning: connection limit reached ({}) for {}",
                   per_ip ? "per client" : "in total", client);
      // A named string: GCC 12 mishandles temporaries that live across a co_await.
      const std::string reply = fmt::format("421 4.7.0 {} Error: too many connections{}\r\n",
                                            options.hostname, per_ip ? " from " + client_ip : "");
      co_await conn.Write(reply, std::chrono::seconds(10));
      // Not `mine`: other sessions of this client may have come and gone (and erased the
      // entry) while we waited.
      if (auto it = per_client.find(client_ip); it != per_client.end() && it->second == 0) {
        per_client.erase(it);
      }
      co_return;
    }
    ++total;
    ++mine;
    spdlog::info("connect from {}", client);

    bool trusted = false;
    for (const auto& net : options.trusted_networks) trusted = trusted || net.Contains(client_ip);
    SessionParams params;
    params.hostname = options.hostname;
    params.limits = options.limits;
    params.starttls_offered = listener.tls != nullptr;
    params.trusted = trusted;
    params.client_address = client_ip;
    params.next_queue_id = [this] { return ids.Next(queue::Clock::now()); };
    params.now = [] { return queue::Clock::now(); };
    params.budget = &budget;
    ServerSession session(std::move(params));
    session.Start();

    const auto write_timeout = options.limits.command_timeout;
    std::vector<char> buf(16384);
    auto lost = [&](std::error_code why) {
      spdlog::info("lost connection after {} from {}: {}", session.LastCommand(), client,
                   why.message());
    };
    for (;;) {
      const auto action = session.Next();
      for (const auto& event : session.TakeEvents()) spdlog::info("{}: {}", client, event);
      if (action == ServerSession::Action::kEnqueue) {
        queue::NewMessage message = session.TakeMessage();
        const std::string id = message.id, sender = message.sender;
        const size_t size = message.content.size(), nrcpt = message.recipients.size();
        auto stored = co_await Enqueue(message);
        if (stored) {
          spdlog::info("{}: client={}, from=<{}>, size={}, nrcpt={} (queue active)", id, client,
                       sender, size, nrcpt);
          session.EnqueueDone(true);
          if (on_queued) on_queued();
        } else {
          spdlog::error("{}: queue write failed, client={}: {}", id, client,
                        stored.error().message);
          session.EnqueueDone(false);
        }
        continue;
      }
      const std::string out = session.TakeOutput();
      if (!out.empty() && (ec = co_await conn.Write(out, write_timeout))) {
        lost(ec);
        break;
      }
      if (action == ServerSession::Action::kClose) break;
      if (action == ServerSession::Action::kStartTls) {
        const std::error_code hs_ec =
            co_await conn.StartTls(*listener.tls, asio::ssl::stream_base::server,
                                   options.limits.command_timeout, [](auto*) {});
        if (hs_ec) {
          spdlog::warn("SSL_accept error from {}: {}", client, hs_ec.message());
          lost(hs_ec);
          break;
        }
        const std::string description = tls::DescribeSession(conn.tls->native_handle());
        spdlog::info("TLS connection established from {}: {}", client, description);
        session.TlsStarted(description);
        continue;
      }
      if (stopping) {
        session.Abort("service shutting down");
        continue;
      }
      auto [read_ec, n] = co_await conn.ReadSome(buf.data(), buf.size(), session.ReadTimeout());
      if (read_ec == asio::error::timed_out) {
        spdlog::info("timeout after {} from {}", session.CommandStats(), client);
        session.Abort("timeout exceeded");
        continue;
      }
      if (read_ec) {
        lost(read_ec);  // the client went away without QUIT
        break;
      }
      session.Feed(std::string_view(buf.data(), n));
    }
    co_await conn.Close();
    spdlog::info("disconnect from {} {}", client, session.CommandStats());
    --total;
    if (--per_client[client_ip] == 0) per_client.erase(client_ip);
  }
};

SmtpServer::SmtpServer(asio::io_context& io, ServerOptions options, queue::Committer& committer,
                       queue::QueueIdGenerator& ids)
    : impl_(std::make_shared<Impl>(io, std::move(options), committer, ids)) {}

SmtpServer::~SmtpServer() { Stop(); }

void SmtpServer::OnQueued(std::function<void()> callback) {
  impl_->on_queued = std::move(callback);
}

tl::expected<void, std::string> SmtpServer::Start() {
  for (const auto& lo : impl_->options.listeners) {
    auto& l = impl_->listeners.emplace_back();
    l.options = lo;
    const std::string name = lo.address + ":" + std::to_string(lo.port);
    if (lo.starttls) {
      auto ctx = tls::MakeServerContext(lo.tls);
      if (!ctx) return tl::unexpected("listener " + name + ": " + ctx.error());
      l.tls = std::move(*ctx);
    }
    std::error_code ec;
    const auto address = asio::ip::make_address(lo.address, ec);
    if (ec) return tl::unexpected("listener " + name + ": not an IP address");
    const tcp::endpoint ep(address, lo.port);
    l.acceptor = std::make_unique<tcp::acceptor>(impl_->io);
    l.acceptor->open(ep.protocol(), ec);
    if (!ec) l.acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) l.acceptor->bind(ep, ec);
    if (!ec) l.acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return tl::unexpected("listener " + name + ": " + ec.message());
    spdlog::info("listening on {}{}", name, lo.starttls ? " (STARTTLS)" : "");
  }
  for (auto& l : impl_->listeners) asio::co_spawn(impl_->io, impl_->Accept(l), LogIfBug);
  return {};
}

void SmtpServer::Reload(const ServerOptions& options) {
  auto& current = impl_->options;
  bool listeners_changed = options.listeners.size() != current.listeners.size();
  for (size_t i = 0; !listeners_changed && i < options.listeners.size(); ++i) {
    const auto& a = options.listeners[i];
    const auto& b = current.listeners[i];
    listeners_changed = a.address != b.address || a.port != b.port || a.starttls != b.starttls ||
                        a.tls.cert_file != b.tls.cert_file || a.tls.key_file != b.tls.key_file;
  }
  if (listeners_changed) {
    spdlog::warn("reload: [[listener]] changes take effect only after a restart");
  }
  const auto listeners = current.listeners;
  current = options;
  impl_->budget.SetLimit(options.limits.max_inflight_bytes);
  current.listeners = listeners;
}

void SmtpServer::Stop() {
  impl_->stopping = true;
  for (auto& l : impl_->listeners) {
    std::error_code ec;
    if (l.acceptor) l.acceptor->close(ec);
  }
}

}  // namespace danerelay::relay
