#pragma once
// Dead destinations (issue 26, per recipient domain for now): after `limit` connection or
// handshake failures in a row to a domain's MX hosts, the delivery agent suspends the domain
// for a while (origin "dead", the operator's suspension table) instead of letting every message
// wait out its own connect timeouts; when the suspension ends, one delivery probes (the agent
// suspends again as it starts, so the rest keeps waiting), and a server that answers ends it.
// This is the bookkeeping alone: no I/O, no clock.
#include <cstdint>
#include <map>
#include <string>

namespace danerelay::relay {

class DeadDestinations {
 public:
  enum class Verdict {
    kNothing,
    kDead,   // the failures just reached the limit: suspend the domain
    kAlive,  // a server of a dead domain answered: end its suspension
  };
  // After one delivery pass to `domain`: `failures` addresses could not be connected to or
  // failed before SMTP got going; `reached`: a server answered. `limit` 0: never dead.
  Verdict Note(const std::string& domain, std::uint32_t failures, bool reached,
               std::uint32_t limit);
  // At the limit: the next delivery to it is a probe.
  bool Dead(const std::string& domain, std::uint32_t limit) const;
  std::uint32_t Failures(const std::string& domain) const;

 private:
  std::map<std::string, std::uint32_t> failures_;  // in a row; domains with none are absent
};

}  // namespace danerelay::relay
