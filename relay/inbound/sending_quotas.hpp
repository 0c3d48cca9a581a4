#pragma once
// Sending quotas ([quotas]): how many messages (counted at MAIL) and recipients (counted at
// RCPT) a user, a trusted client address, a sender address or a sender domain may send per
// window. No Asio, time injected; the server calls it on its one io thread, so a check and its
// count are one step and parallel sessions of one user cannot pass a quota together.
//
// Windows are fixed and aligned to the epoch: "1d" is the UTC day, "1h" the clock hour.
// A command is counted when it is accepted, against every rule that applies, or refused and
// counted nowhere. A transaction that is accepted and later not queued (RSET, a lost connection,
// a refused DATA) keeps its count: the quota limits what a client attempts, and giving counts
// back would let a client probe its quota at no cost.
#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "queue/store.hpp"
#include "relay/options.hpp"

namespace danerelay::relay {

class SendingQuotas {
 public:
  using TimePoint = queue::TimePoint;
  explicit SendingQuotas(QuotaOptions options = {}) : options_(std::move(options)) {}
  // A reload: new rules; the counts of keys that remain are kept.
  void SetOptions(QuotaOptions options) { options_ = std::move(options); }
  bool empty() const { return options_.rules.empty(); }

  struct Sender {
    std::string user;      // the AUTH user; "" when not authenticated
    std::string address;   // the client's IP address
    bool trusted = false;  // in trusted_networks: client rules apply
    std::string sender;    // the MAIL FROM address ("" for <>: sender rules do not apply)
  };
  struct Refusal {
    std::string kind;    // "user", "client", "sender", "sender_domain" (the metric's label)
    std::string key;     // "user alice", "client 192.0.2.7", ...
    std::string limit;   // "5 messages per 10s"
    bool first = false;  // the first refusal of this key in this window: warn once
  };
  // One message (at MAIL) or one recipient (at RCPT), counted unless a quota refuses it.
  std::optional<Refusal> Count(const Sender& s, bool recipient, TimePoint now);

  // The counters kept in the queue so that long windows survive a restart: the rows changed
  // since the last call, and, at start, the rows read back (added to what was counted since).
  std::vector<queue::Store::QuotaUsage> TakeChanged();
  void Load(const std::vector<queue::Store::QuotaUsage>& rows, TimePoint now);

 private:
  struct Counter {
    TimePoint start;
    std::uint64_t count = 0;
    bool warned = false;
  };
  struct Check {
    const QuotaLimit* limit;
    std::string kind, key, counter;
  };
  std::vector<Check> Applicable(const Sender& s, bool recipient) const;
  Counter& At(const std::string& counter, std::chrono::seconds window, TimePoint now);

  QuotaOptions options_;
  std::unordered_map<std::string, Counter> counters_;
  std::set<std::string> changed_;
};

}  // namespace danerelay::relay
