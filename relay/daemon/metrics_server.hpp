#pragma once
// The Prometheus endpoint: GET /metrics over plain HTTP/1.0 on [metrics] address:port (off
// unless an address is set; bind it to loopback or a management network). The counters come
// from Metrics; the queue's gauges are read per scrape on a thread of their own (from a
// read-only connection to the queue, so a large queue never holds up the protocol thread);
// `extra` adds gauges of other parts (the resolver's health). At most kMetricsMaxConnections
// connections are served at once (others are closed at once), each within a deadline for the
// request and one for the response, so that idle clients cannot take the descriptors the SMTP
// listeners need.
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include <tl/expected.hpp>

#include "queue/store.hpp"
#include "relay/options.hpp"

namespace asio {
class io_context;
}

namespace danerelay::relay {

// Counted in the daemon's file-descriptor budget with the SMTP connections (daemon.cpp).
inline constexpr std::size_t kMetricsMaxConnections = 8;

class MetricsServer {
 public:
  MetricsServer(asio::io_context& io, MetricsOptions options, queue::StoreOptions queue,
                std::function<std::string()> extra);
  ~MetricsServer();
  tl::expected<void, std::string> Start();  // nothing to do when no address is configured
  void Stop();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace danerelay::relay
