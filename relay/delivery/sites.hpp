#pragma once
// Sites (issue 26): deliveries are grouped by where they go, not by recipient domain, so that a
// thousand Google Workspace domains share one budget for Google's MX hosts. A domain's site is
// the route's next hops when a route applies, else the provider whose MX suffixes all of its MX
// hosts carry ([shaping.providers], with shipped entries for the largest), else the sorted set
// of its MX host names; the domain itself when it has none (no MX record, a failed lookup).
// Pure: the agent looks the MX records up and keys its slots and rates by the name.
#include <string>
#include <vector>

#include "relay/options.hpp"
#include "relay/routes.hpp"

namespace danerelay::relay {

// The shipped providers, after the operator's (relay/options.hpp SiteProvider).
const std::vector<SiteProvider>& ShippedProviders();

// The site of a domain whose MX hosts are `mx_hosts` (any case, with or without the final
// dot): "google" for a provider, else "mx1.example.net,mx2.example.net"; "" for none.
std::string SiteOfMx(std::vector<std::string> mx_hosts, const std::vector<SiteProvider>& own);

// The site of a routed domain: "route [host]:port,..." of its hosts.
std::string SiteOfRoute(const Route& route);

// Whether `site` is a provider's ([shaping.providers] or shipped): a site any domain joins by
// naming MX hosts under the provider's suffixes in its own DNS.
bool IsProviderSite(const std::string& site, const std::vector<SiteProvider>& own);

// [shaping.site."S"] messages_per_connection, else [shaping.default]'s.
std::uint32_t MessagesPerConnection(const DeliveryOptions& options, const std::string& site);

}  // namespace danerelay::relay
