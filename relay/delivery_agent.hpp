#pragma once
// The delivery agent: takes due recipients from the queue, resolves each recipient domain's MX
// hosts with their DNSSEC facts, applies the DANE policy (dane_policy.hpp) per host, delivers
// over SMTP (smtp_client.hpp), tries the next address and the next MX when one fails, and
// records one outcome per recipient plus every attempt.
//
// Scheduling is deliberately simple for now: a fixed retry delay, a poll every second and a
// wake-up when mail is queued. Backoff, expiry and bounces belong to the queue's scheduler.
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "queue/committer.hpp"
#include "relay/options.hpp"
#include "relay/smtp_client.hpp"

namespace asio {
class io_context;
}
namespace danerelay::dns {
class Resolver;
}

namespace danerelay::relay {

class DeliveryAgent {
 public:
  DeliveryAgent(asio::io_context& io, DeliveryOptions options, std::string helo_name,
                dns::Resolver& resolver, queue::Committer& committer);
  ~DeliveryAgent();
  // Fails when the TLS client context cannot be made.
  tl::expected<void, std::string> Start();
  void Wake();  // mail was queued: look now rather than at the next poll
  void Stop();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace danerelay::relay
