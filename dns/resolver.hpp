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

#include "dns/lookup.hpp"
#include "dns/options.hpp"
#include "dns/records.hpp"

namespace danerelay::dns {

// The DS and DNSKEY records in a trust anchor file (zone-file format); an error when the file
// is missing, unreadable or holds none.
tl::expected<int, std::string> CountTrustAnchors(const std::filesystem::path& file);

class Resolver : public Lookup {
 public:
  // Fails with a message when libunbound rejects the options (a missing trust anchor file, say).
  static tl::expected<std::unique_ptr<Resolver>, std::string> Create(
      asio::io_context& io, const ResolverOptions& options);
  ~Resolver() override;

  asio::awaitable<MxAnswer> LookupMx(const std::string& domain) override;
  asio::awaitable<AddressAnswer> LookupAddresses(const std::string& host, bool ipv6) override;
  asio::awaitable<TxtAnswer> LookupTxt(const std::string& name) override;
  asio::awaitable<TlsaAnswer> LookupTlsa(const std::string& name) override;
  asio::awaitable<Answer> LookupAny(const std::string& name, int type) override;

  struct Impl;

 private:
  explicit Resolver(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace danerelay::dns
