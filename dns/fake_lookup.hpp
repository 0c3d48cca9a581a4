#pragma once
// A scripted dns::Lookup for unit tests: answers are set per name beforehand; a name without
// one is NXDOMAIN in a signed zone (a secure denial), and every query is counted, so a test can
// say both what was decided and what was asked.
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "dns/lookup.hpp"

namespace danerelay::dns {

class FakeLookup : public Lookup {
 public:
  std::map<std::string, MxAnswer> mx;
  std::map<std::pair<std::string, bool>, AddressAnswer> addresses;  // (host, ipv6)
  std::map<std::string, TxtAnswer> txt;
  std::map<std::string, TlsaAnswer> tlsa;
  std::map<std::pair<std::string, int>, Answer> any;
  std::vector<std::string> asked;  // "MX name", "A name", "AAAA name", "TLSA name", ...

  // An answer with records, NOERROR, in a zone of the given state.
  template <typename A>
  static A With(DnssecState state, const std::string& name) {
    A a;
    a.rcode = Rcode::kNoError;
    a.dnssec = state;
    a.canonical_name = name;
    return a;
  }
  // A failed lookup (SERVFAIL, timeout) or a bogus answer.
  template <typename A>
  static A Failed(DnssecState state = DnssecState::kFailed) {
    A a;
    a.rcode = Rcode::kFailed;
    a.dnssec = state;
    a.why = "scripted failure";
    return a;
  }

  asio::awaitable<MxAnswer> LookupMx(const std::string& domain) override {
    asked.push_back("MX " + domain);
    co_return Find(mx, domain, domain);
  }
  asio::awaitable<AddressAnswer> LookupAddresses(const std::string& host, bool ipv6) override {
    asked.push_back((ipv6 ? "AAAA " : "A ") + host);
    co_return Find(addresses, std::make_pair(host, ipv6), host);
  }
  asio::awaitable<TxtAnswer> LookupTxt(const std::string& name) override {
    asked.push_back("TXT " + name);
    co_return Find(txt, name, name);
  }
  asio::awaitable<TlsaAnswer> LookupTlsa(const std::string& name) override {
    asked.push_back("TLSA " + name);
    co_return Find(tlsa, name, name);
  }
  asio::awaitable<Answer> LookupAny(const std::string& name, int type) override {
    asked.push_back(std::to_string(type) + " " + name);
    co_return Find(any, std::make_pair(name, type), name);
  }

 private:
  template <typename Map, typename Key>
  static typename Map::mapped_type Find(const Map& map, const Key& key, const std::string& name) {
    if (auto it = map.find(key); it != map.end()) return it->second;
    typename Map::mapped_type denial;
    denial.rcode = Rcode::kNxDomain;
    denial.dnssec = DnssecState::kSecure;
    denial.canonical_name = name;
    return denial;
  }
};

}  // namespace danerelay::dns
