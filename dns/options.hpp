#pragma once
// The resolver's options, filled by config/ ([dns]) or by a test.
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace danerelay::dns {

struct ResolverOptions {
  // DS or DNSKEY records of the trust anchor, zone-file format (Debian: dns-root-data).
  std::filesystem::path trust_anchor_file = "/usr/share/dns/root.key";
  // Upstream resolvers as "IP" or "IP@port"; validation still happens here. Empty: iterate
  // from the root servers (root_hints, or libunbound's built-in list).
  std::vector<std::string> forwarders;
  std::filesystem::path root_hints;
  std::chrono::milliseconds timeout = std::chrono::seconds(15);
  // The self-check (relay/health/resolver_health.hpp): a name that must validate as secure
  // ("." : the root's DNSKEY RRset; any other name: its A RRset), an optional name that must
  // fail validation, how often, and what delivery does while the check fails.
  std::string validation_canary = ".";
  std::string bogus_canary;
  std::chrono::seconds health_interval = std::chrono::minutes(5);
  bool deliver_on_validation_failure = false;  // on_validation_failure = "deliver"
};

}  // namespace danerelay::dns
