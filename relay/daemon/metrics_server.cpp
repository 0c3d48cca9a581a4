#include "relay/daemon/metrics_server.hpp"

#include <spdlog/spdlog.h>
#include <asio/co_spawn.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>
#include <asio/use_awaitable.hpp>

#include <fmt/format.h>

#include "relay/daemon/logging.hpp"
#include "relay/daemon/metrics.hpp"
#include "relay/io/connection.hpp"
#include "relay/io/store_bridge.hpp"

namespace danerelay::relay {
namespace {

using asio::ip::tcp;

// The request head must arrive within this, however slowly it trickles in; the response must
// be taken within the other.
constexpr std::chrono::seconds kRequestDeadline(10);
constexpr std::chrono::seconds kResponseDeadline(10);
// A flood of connections beyond the limit is logged at most this often.
constexpr std::chrono::minutes kRefusalLogInterval(1);

// The queue's gauges, read from a connection of our own (never the daemon's writer).
std::string QueueGauges(const queue::StoreOptions& where) {
  std::string out =
      "# HELP danerelay_queue_up Whether the queue could be read for this scrape.\n"
      "# TYPE danerelay_queue_up gauge\n";
  auto store = queue::Store::Open(where, queue::OpenMode::kReadOnly);
  auto stats =
      store ? (*store)->GetStats(0)
            : tl::expected<queue::Store::Stats, queue::StoreError>(tl::unexpected(store.error()));
  if (!stats) return out + "danerelay_queue_up 0\n";
  out += "danerelay_queue_up 1\n";
  out += fmt::format(
      "# HELP danerelay_queue_messages Messages in the queue with a recipient not yet final.\n"
      "# TYPE danerelay_queue_messages gauge\ndanerelay_queue_messages {}\n",
      stats->messages);
  out +=
      "# HELP danerelay_queue_recipients Recipients not yet final, by state.\n"
      "# TYPE danerelay_queue_recipients gauge\n";
  for (const char* state : {"queued", "deferred", "attempting", "held"}) {
    const auto it = stats->recipients_by_state.find(state);
    out += fmt::format("danerelay_queue_recipients{{state=\"{}\"}} {}\n", state,
                       it == stats->recipients_by_state.end() ? 0 : it->second);
  }
  const double age =
      stats->oldest_arrival
          ? std::chrono::duration<double>(queue::Clock::now() - *stats->oldest_arrival).count()
          : 0.0;
  out += fmt::format(
      "# HELP danerelay_queue_oldest_message_age_seconds Age of the oldest message in the "
      "queue (0 when empty).\n# TYPE danerelay_queue_oldest_message_age_seconds gauge\n"
      "danerelay_queue_oldest_message_age_seconds {:.0f}\n",
      age);
  return out;
}

}  // namespace

struct MetricsServer::Impl : std::enable_shared_from_this<Impl> {
  asio::io_context& io;
  MetricsOptions options;
  queue::StoreOptions queue;
  std::function<std::string()> extra;
  std::unique_ptr<tcp::acceptor> acceptor;
  asio::thread_pool reader{1};
  bool stopping = false;
  std::size_t open = 0;  // connections being served
  std::chrono::steady_clock::time_point refusal_logged{};

  Impl(asio::io_context& i, MetricsOptions o, queue::StoreOptions q, std::function<std::string()> e)
      : io(i), options(std::move(o)), queue(std::move(q)), extra(std::move(e)) {}
  ~Impl() { reader.join(); }

  asio::awaitable<std::string> ReadGauges() {
    const auto read = [where = queue] { return QueueGauges(where); };
    co_return co_await OnPool(reader, read);
  }

  asio::awaitable<void> Serve(tcp::socket socket) {
    auto self = shared_from_this();
    Connection conn(std::move(socket));
    std::string request;
    char buf[2048];
    // The request head within 8 KiB and kRequestDeadline in all.
    const auto deadline = std::chrono::steady_clock::now() + kRequestDeadline;
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < 8192) {
      const auto left = std::chrono::duration_cast<std::chrono::seconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) co_return;
      auto [ec, n] = co_await conn.ReadSome(buf, sizeof buf, left);
      if (ec) co_return;
      request.append(buf, n);
    }
    const std::string line = request.substr(0, request.find("\r\n"));
    std::string response;
    if (line.starts_with("GET /metrics ") || line == "GET /metrics") {
      std::string body = co_await ReadGauges();
      body += Metrics::Get().Render();
      if (extra) body += extra();
      response = fmt::format(
          "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
          "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
          body.size(), body);
    } else {
      const std::string body = "only GET /metrics is served here\n";
      response = fmt::format(
          "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n"
          "Connection: close\r\n\r\n{}",
          body.size(), body);
    }
    (void)co_await conn.Write(response, kResponseDeadline);
    co_await conn.Close();
  }

  asio::awaitable<void> Accept() {
    auto self = shared_from_this();
    for (;;) {
      auto [ec, socket] = co_await acceptor->async_accept(kUseTuple);
      if (stopping) co_return;
      if (ec) {
        spdlog::warn("metrics: accept: {}; pausing for 1s", ec.message());
        asio::steady_timer pause(io, std::chrono::seconds(1));
        co_await pause.async_wait(kUseTuple);
        continue;
      }
      if (open >= kMetricsMaxConnections) {
        // Closed at once: a waiting connection would hold a descriptor SMTP clients need.
        std::error_code ignored;
        socket.close(ignored);
        const auto now = std::chrono::steady_clock::now();
        if (now - refusal_logged >= kRefusalLogInterval) {
          refusal_logged = now;
          spdlog::warn("metrics: {} connections open; closing new ones until one ends",
                       kMetricsMaxConnections);
        }
        continue;
      }
      ++open;
      asio::co_spawn(
          io, Serve(std::move(socket)),
          [self, bug = LogIfBug(Service::kMaster, "a metrics connection")](std::exception_ptr e) {
            --self->open;
            bug(e);
          });
    }
  }
};

MetricsServer::MetricsServer(asio::io_context& io, MetricsOptions options,
                             queue::StoreOptions queue, std::function<std::string()> extra)
    : impl_(std::make_shared<Impl>(io, std::move(options), std::move(queue), std::move(extra))) {}

MetricsServer::~MetricsServer() { Stop(); }

tl::expected<void, std::string> MetricsServer::Start() {
  const auto& o = impl_->options;
  if (o.address.empty()) return {};
  std::error_code ec;
  const auto address = asio::ip::make_address(o.address, ec);
  if (ec) return tl::unexpected("[metrics] address: not an IP address: " + o.address);
  const tcp::endpoint ep(address, o.port);
  impl_->acceptor = std::make_unique<tcp::acceptor>(impl_->io);
  impl_->acceptor->open(ep.protocol(), ec);
  if (!ec) impl_->acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl_->acceptor->bind(ep, ec);
  if (!ec) impl_->acceptor->listen(64, ec);
  if (ec)
    return tl::unexpected(fmt::format("[metrics] {}:{}: {}", o.address, o.port, ec.message()));
  spdlog::info("metrics on http://{}:{}/metrics", o.address, o.port);
  asio::co_spawn(impl_->io, impl_->Accept(), LogIfBug(Service::kMaster, "the metrics listener"));
  return {};
}

void MetricsServer::Stop() {
  impl_->stopping = true;
  if (impl_->acceptor) {
    std::error_code ec;
    impl_->acceptor->close(ec);
  }
}

}  // namespace danerelay::relay
