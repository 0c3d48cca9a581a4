#pragma once
// The delivery agent: claims due messages when the scheduler (scheduler.hpp) says mail is due
// and there is room, delivers each message's recipients domain by domain (domain_delivery.hpp)
// within the per-destination limits (destination_slots.hpp), and records one outcome per
// recipient plus every attempt through the group commit. Once per tick it runs the queue's
// upkeep (queue/upkeep.hpp: the command line's changes, expiry, purge).
//
// When to retry, when to give up and whom to tell is decided by queue/retry.hpp after each
// pass; bounces and delay warnings (pass_notices.hpp) are queued in the same transaction as the
// recipient states they report.
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "queue/committer.hpp"
#include "queue/queue_id.hpp"
#include "relay/delivery/smtp_client.hpp"
#include "relay/options.hpp"

namespace asio {
class io_context;
}
namespace danerelay::dns {
class Lookup;
}

namespace danerelay::relay {

class ResolverHealth;
namespace dkim {
class SignerSlot;
}

class DeliveryAgent {
 public:
  // `ids` names the notices (bounces, delay warnings) the agent queues.
  DeliveryAgent(asio::io_context& io, DeliveryOptions options, std::string helo_name,
                dns::Lookup& resolver, queue::Committer& committer, queue::QueueIdGenerator& ids);
  ~DeliveryAgent();
  // Fails when the TLS client context cannot be made.
  tl::expected<void, std::string> Start();
  void Wake();  // mail was queued: look now rather than at the next poll
  // New options (SIGHUP) for every attempt that starts from now on. Call on the io thread.
  // New options and EHLO name ([server] hostname, also the notices' Reporting-MTA).
  void Reload(DeliveryOptions options, std::string helo_name);
  // Claims nothing more; deliveries in flight go on to their end and record it.
  void Stop();
  // Messages in delivery or waiting for their outcome's commit.
  std::size_t InFlight() const;
  // Writes what traffic shaping holds to `file` (shaping_status.hpp) as it changes.
  void WriteShapingStatus(std::filesystem::path file);
  // The resolver's self-check, consulted before each delivery (nullptr: none).
  void UseResolverHealth(const ResolverHealth* health);
  // Notices (bounces, delay warnings, "relayed") are DKIM-signed by `slot`, which must outlive
  // the agent.
  void UseDkim(const dkim::SignerSlot* slot);
  // The resolver's self-check passes again: the recipients deferred only because it failed
  // become due now instead of after their backoff. Call on the io thread.
  void ValidationWorksAgain();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace danerelay::relay
