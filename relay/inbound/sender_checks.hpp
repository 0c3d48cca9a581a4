#pragma once
// The sender checks ([sender_checks]) run when a client sends MAIL FROM, before the 250: the
// allow-list, that the sender domain exists (MX, A or AAAA; RFC 7505 null MX refused), that its
// mail exchangers are globally routed addresses, and domain blocklists (RHSBL). All DNS goes
// through the daemon's libunbound resolver. A DNS failure never accepts by mistake and never
// rejects for good: it gives 450 where the check must decide, and is skipped where it may
// (blocklists, the private-MX check).
#include <asio/awaitable.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include <tl/expected.hpp>

#include "relay/options.hpp"
#include "relay/smtp/server_session.hpp"

namespace danerelay::dns {
class Resolver;
}

namespace danerelay::relay {

class SenderChecks {
 public:
  // Reads the allow-list file when one is set; the error names the file and line.
  // `hostname` is what the verification probe says in EHLO.
  static tl::expected<SenderChecks, std::string> Make(dns::Resolver& resolver,
                                                      SenderCheckOptions options,
                                                      std::string hostname);
  // Whether any check is on.
  bool enabled() const;
  bool exempt_trusted() const { return options_.exempt_trusted; }
  // `sender` is not empty. nullopt: accepted.
  asio::awaitable<std::optional<Refusal>> Check(const std::string& sender) const;

 private:
  SenderChecks(dns::Resolver& resolver, SenderCheckOptions options, std::string hostname)
      : resolver_(&resolver), options_(std::move(options)), hostname_(std::move(hostname)) {}
  // Existence, private MX, and (`verify`: an own domain) the verification probe, from one MX
  // lookup.
  asio::awaitable<std::optional<Refusal>> CheckDomain(const std::string& sender,
                                                      const std::string& domain, bool verify) const;
  asio::awaitable<std::optional<Refusal>> Verify(const std::string& sender,
                                                 const std::string& host) const;
  dns::Resolver* resolver_;
  SenderCheckOptions options_;
  std::string hostname_;
  std::set<std::string> allowed_;  // lowercase addresses and "@domain"s
  // Verification results by lowercase address, until when they hold.
  struct Verdict {
    bool valid = false;
    std::string reply;
    std::chrono::steady_clock::time_point until;
  };
  std::shared_ptr<std::map<std::string, Verdict>> verified_ =
      std::make_shared<std::map<std::string, Verdict>>();
};

}  // namespace danerelay::relay
