#pragma once
// What the rest of danerelay asks of DNS: MX, addresses, TXT, TLSA and any RRset, each answer
// with its DNSSEC state (dns/records.hpp). dns::Resolver is the real one (libunbound, validating
// in-process); tests put a scripted one in its place (dns/fake_lookup.hpp).
//
// A failure (SERVFAIL, timeout, bogus) is an answer with Rcode::kFailed or a bogus state, never
// an empty NODATA: RFC 7672 treats "lookup failed" and "no records" differently.
#include <string>

#include <asio/awaitable.hpp>

#include "dns/records.hpp"

namespace danerelay::dns {

// Arguments are references: callers await at once, and GCC 12 mishandles temporaries (such as
// by-value parameter objects) that live across a co_await.
class Lookup {
 public:
  virtual ~Lookup() = default;
  virtual asio::awaitable<MxAnswer> LookupMx(const std::string& domain) = 0;
  virtual asio::awaitable<AddressAnswer> LookupAddresses(const std::string& host, bool ipv6) = 0;
  virtual asio::awaitable<TxtAnswer> LookupTxt(const std::string& name) = 0;
  // The TLSA RRset at `name` (e.g. "_25._tcp.mx.example.org").
  virtual asio::awaitable<TlsaAnswer> LookupTlsa(const std::string& name) = 0;
  // Any RRset, for its DNSSEC state and rcode only (the resolver's self-check: the root's
  // DNSKEY must validate as secure).
  virtual asio::awaitable<Answer> LookupAny(const std::string& name, int type) = 0;
  static constexpr int kTypeA = 1, kTypeCname = 5, kTypeTxt = 16, kTypeDnskey = 48;
};

}  // namespace danerelay::dns
