#pragma once
// The probe behind `danerelay dane-check` and the daemon's pre-flight check of mandatory-DANE
// domains: MX, addresses and TLSA with their DNSSEC state, the DANE policy per MX host, and a
// STARTTLS probe of each address that the policy lets through (EHLO, STARTTLS, QUIT: no mail
// is sent), exactly as a delivery would decide.
#include <asio/awaitable.hpp>
#include <asio/ssl/context.hpp>
#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>

#include "relay/options.hpp"

namespace danerelay::dns {
class Lookup;
}

namespace danerelay::relay {

class StsPolicies;

// `sts`: MTA-STS as delivery applies it (nullptr: not looked at). Fills `report` (domain, mode,
// hosts with their facts, policy and connections, verdict: "delivered" | "deferred" | "bounced",
// and for a domain without hosts its status and reason) and returns 0 (would be delivered), 1
// (deferred) or 2 (bounced). `mandatory` forces mandatory DANE; otherwise [dane] mandatory_domains
// decides. [routes] apply as in delivery.
asio::awaitable<int> ProbeDomain(const DeliveryOptions& options, const std::string& helo_name,
                                 const std::string& domain, bool mandatory, dns::Lookup& resolver,
                                 std::shared_ptr<asio::ssl::context> tls_ctx, StsPolicies* sts,
                                 nlohmann::json& report);

}  // namespace danerelay::relay
