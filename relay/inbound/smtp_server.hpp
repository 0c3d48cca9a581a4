#pragma once
// The SMTP listeners: accepts connections, enforces the connection limits, and runs one
// ServerSession per client on the io_context thread. Messages go to the queue through the
// Committer; the 250 reply is sent only after the commit that holds the message.
#include <functional>
#include <memory>
#include <string>

#include <tl/expected.hpp>

#include "queue/committer.hpp"
#include "queue/queue_id.hpp"
#include "relay/options.hpp"

namespace asio {
class io_context;
}
namespace danerelay::dns {
class Resolver;
}

namespace danerelay::relay {

namespace dkim {
class SignerSlot;
}

class SmtpServer {
 public:
  // `committer`, `ids` and `resolver` (the sender checks' DNS) must outlive the server.
  SmtpServer(asio::io_context& io, ServerOptions options, queue::Committer& committer,
             queue::QueueIdGenerator& ids, dns::Resolver& resolver);
  ~SmtpServer();

  // Submissions are DKIM-signed by `slot` (relay/dkim/slot.hpp), which must outlive the server.
  void UseDkim(const dkim::SignerSlot* slot);
  // Called on the io thread after each message is committed (the delivery agent wakes up).
  void OnQueued(std::function<void()> callback);
  // Loads the TLS contexts and binds every listener; an error names the listener.
  tl::expected<void, std::string> Start();
  // New limits, trusted networks, accounts and host name for sessions that start from now on
  // (SIGHUP). Listeners matched by address and port: kept ones take their new settings and
  // read certificate and key again, removed ones stop accepting, new ones are bound; what
  // fails is logged and the rest applies.
  void Reload(const ServerOptions& options);
  // Stops accepting. Every session waiting for a command gets "421 4.3.2 ... shutting down"
  // at once; one receiving message data may finish it (and get its 250) within 10 s, then
  // gets the 421 too. Each session logs its disconnect.
  void Stop();
  // Sessions still open (the daemon waits for none before it exits, bounded).
  std::size_t ActiveSessions() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace danerelay::relay
