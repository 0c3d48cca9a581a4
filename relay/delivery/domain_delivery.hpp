#pragma once
// One delivery pass for one message's recipients in one domain: the next hops (a static route
// or the MX RRset), the DANE policy per MX host (dane_policy.hpp), SMTP to each address of a
// usable host, the next address and the next MX when one fails. Returns one outcome per
// recipient and every attempt; what the outcome means for the queue is decided by the caller.
#include <asio/awaitable.hpp>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "queue/message.hpp"
#include "relay/delivery/smtp_client.hpp"
#include "relay/options.hpp"

namespace danerelay::dns {
class Lookup;
}

namespace danerelay::relay {

// What a pass needs from the delivery agent. References: the agent outlives every pass, and
// its options are replaced in place on reload (a pass reads them as they are at each step).
class ResolverHealth;
class StsPolicies;

struct DomainDeliveryContext {
  const DeliveryOptions& options;
  const std::string& helo_name;
  dns::Lookup& resolver;
  std::shared_ptr<asio::ssl::context> tls_context;
  ConnectionCache* connections;
  std::mt19937& rng;
  const ResolverHealth* health = nullptr;  // the resolver's self-check
  StsPolicies* sts = nullptr;              // MTA-STS; nullptr when [mta_sts] enabled = false
};

struct DomainOutcome {
  std::vector<queue::RecipientUpdate> updates;
  std::vector<queue::AttemptRecord> attempts;
};

// `m` holds only the recipients in `domain`. Deferred updates carry no next attempt.
asio::awaitable<DomainOutcome> DeliverDomain(DomainDeliveryContext ctx, const queue::MessageInfo& m,
                                             const std::string& content, const std::string& domain);

}  // namespace danerelay::relay
