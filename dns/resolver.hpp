#pragma once
// DNS with DNSSEC validated in-process by libunbound, driven by the Asio event loop (ub_fd).
//
// Every answer carries its DNSSEC state; a failure (SERVFAIL, timeout, bogus) is kept apart from
// NXDOMAIN and NODATA, because RFC 7672 treats "lookup failed" and "no records" differently and
// nothing may turn the first into the second. This is the only place that includes <unbound.h>.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <tl/expected.hpp>

#include "dns/options.hpp"
#include "dns/records.hpp"

namespace danerelay::dns {

// Arguments are references: callers await at once, and GCC 12 mishandles temporaries (such as
// by-value parameter objects) that live across a co_await.
// The DS and DNSKEY records in a trust anchor file (zone-file format); an error when the file
// is missing, unreadable or holds none.
tl::expected<int, std::string> CountTrustAnchors(const std::filesystem::path& file);

class Resolver {
 public:
  // Fails with a message when libunbound rejects the options (a missing trust anchor file, say).
  static tl::expected<std::unique_ptr<Resolver>, std::string> Create(
      asio::io_context& io, const ResolverOptions& options);
  ~Resolver();

  asio::awaitable<MxAnswer> LookupMx(const std::string& domain);
  asio::awaitable<AddressAnswer> LookupAddresses(const std::string& host, bool ipv6);
  asio::awaitable<TxtAnswer> LookupTxt(const std::string& name);
  // The TLSA RRset at `name` (e.g. "_25._tcp.mx.example.org").
  asio::awaitable<TlsaAnswer> LookupTlsa(const std::string& name);
  // Any RRset, for its DNSSEC state and rcode only (the resolver's self-check: the root's
  // DNSKEY must validate as secure).
  asio::awaitable<Answer> Lookup(const std::string& name, int type);
  static constexpr int kTypeA = 1, kTypeCname = 5, kTypeTxt = 16, kTypeDnskey = 48;

  struct Impl;

 private:
  explicit Resolver(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace danerelay::dns
