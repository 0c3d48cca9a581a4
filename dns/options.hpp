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
};

}  // namespace danerelay::dns
