#pragma once
// One delivery pass for one message's recipients in one domain: the next hops (a static route
// or the MX RRset), the DANE policy per MX host (dane_policy.hpp), SMTP to each address of a
// usable host, the next address and the next MX when one fails. Returns one outcome per
// recipient and every attempt; what the outcome means for the queue is decided by the caller.
#include <asio/awaitable.hpp>

#include <functional>
#include <memory>
#include <optional>
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

// The agent's word on a site (sites.hpp), asked once the pass knows where it goes and before it
// connects: its suspensions, message_rate and connections (traffic shaping).
struct Admission {
  bool go = true;  // false: no connection now; the recipients wait without an attempt
  // With go: a slot of the site is held, which the caller gives back after the pass.
  bool holds_slot = false;
  // Without go: not due before this (a rate turn, a suspension's end; none: the store decides).
  std::optional<queue::TimePoint> until;
  std::string why;  // without go, for the log: "site S is suspended until T"
  // Without go: the site is at its connections; the agent wakes the mail when one ends.
  bool for_connection = false;
  // With go: admitted without a connection_rate token, counting on an idle cached connection
  // (the agent counts such deliveries until the pass ends).
  bool reuses = false;
};
using AdmitFn = std::function<asio::awaitable<Admission>(const std::string& site)>;

struct DomainDeliveryContext {
  const DeliveryOptions& options;
  const std::string& helo_name;
  dns::Lookup& resolver;
  std::shared_ptr<asio::ssl::context> tls_context;
  ConnectionCache* connections;
  std::mt19937& rng;
  const ResolverHealth* health = nullptr;  // the resolver's self-check
  StsPolicies* sts = nullptr;              // MTA-STS; nullptr when [mta_sts] enabled = false
  const ReplyMatcher* on_reply = nullptr;  // [[shaping.on_reply]]; nullptr: none
  AdmitFn admit;                           // empty: every site is admitted
};

struct DomainOutcome {
  // The site the pass went to (sites.hpp), "" when the next hops could not be found.
  std::string site;
  // The agent's admission of the site, when it was asked: without go, nothing was attempted
  // (no updates, no attempts) and the recipients wait.
  std::optional<Admission> admission;
  std::vector<queue::RecipientUpdate> updates;
  std::vector<queue::AttemptRecord> attempts;
  // A server's reply matched a [[shaping.on_reply]] rule that acts: no further host was tried,
  // and the caller suspends the site or lowers its connections.
  struct Throttle {
    ReplyRule rule;
    std::string reply;  // as the server said it
    std::string host;   // the MX host that said it
  };
  std::optional<Throttle> throttle;
  // For dead destinations: addresses that could not be connected to or failed before SMTP got
  // going (connect, lost session, TLS handshake), and whether any server answered.
  std::uint32_t unreachable = 0;
  bool reached = false;
  std::string last_unreachable;  // why the last of those failed
};

// `m` holds only the recipients in `domain`. Deferred updates carry no next attempt.
asio::awaitable<DomainOutcome> DeliverDomain(DomainDeliveryContext ctx, const queue::MessageInfo& m,
                                             const std::string& content, const std::string& domain);

// Test only: with DANERELAY_TEST_REWORD=1 in the daemon's environment (read once), every text
// for people that a failure carries (our own account and the server's reply) is reworded: where
// the delivery pass takes a host's failure (so its own decisions see the new words) and where
// the agent records an outcome. What reads the outcome (the final/deferred split, bounces,
// `queue show`'s causes, metrics, TLS-RPT) must not change: tests/e2e/test_reworded.py.
bool RewordTexts();
std::string Reworded(const std::string& text);  // "reworded: " + the text reversed

}  // namespace danerelay::relay
