#include "relay/daemon/reload.hpp"

namespace danerelay::relay {

std::vector<std::string> RestartNeeded(const config::Config& running, const config::Config& next) {
  std::vector<std::string> later;
  // The queue is opened and locked at start, before root is given up.
  if (next.queue.path != running.queue.path) later.push_back("[queue] path");
  // The resolver is made at start; the trust anchor and root hints are read then, as root.
  if (next.dns.forwarders != running.dns.forwarders ||
      next.dns.trust_anchor_file != running.dns.trust_anchor_file ||
      next.dns.root_hints != running.dns.root_hints) {
    later.push_back("[dns] forwarders, trust_anchor_file and root_hints");
  }
  // The endpoint is bound before root is given up.
  if (next.metrics.address != running.metrics.address ||
      next.metrics.port != running.metrics.port) {
    later.push_back("[metrics]");
  }
  // Root is gone once the listeners are bound.
  if (next.server.user != running.server.user || next.server.group != running.server.group) {
    later.push_back("[server] user and group");
  }
  return later;
}

}  // namespace danerelay::relay
