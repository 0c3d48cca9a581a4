#include "relay/inbound/sender_checks.hpp"

#include <spdlog/spdlog.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "dns/idn.hpp"
#include "dns/resolver.hpp"
#include "queue/message.hpp"
#include "relay/daemon/logging.hpp"
#include "relay/inbound/sender_probe.hpp"
#include "relay/network.hpp"

namespace danerelay::relay {
namespace {

Refusal Reject(int code, std::string enhanced, const std::string& sender, std::string why) {
  return Refusal{code, std::move(enhanced),
                 fmt::format("<{}>: Sender address rejected: {}", sender, why)};
}

}  // namespace

tl::expected<SenderChecks, std::string> SenderChecks::Make(dns::Resolver& resolver,
                                                           SenderCheckOptions options,
                                                           std::string hostname) {
  for (auto& d : options.verify_domains) d = LowerAscii(d);
  SenderChecks checks(resolver, std::move(options), std::move(hostname));
  const auto& file = checks.options_.allow_list;
  if (file.empty()) return checks;
  std::ifstream in(file);
  if (!in) {
    return tl::unexpected(fmt::format("{}: cannot read: {}", file.string(), std::strerror(errno)));
  }
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.front() == '#') continue;
    if (line.find('@') == std::string::npos || line.find(' ') != std::string::npos) {
      return tl::unexpected(fmt::format("{}:{}: expected an address or \"@domain\", got '{}'",
                                        file.string(), n, line));
    }
    checks.allowed_.insert(LowerAscii(line));
  }
  return checks;
}

bool SenderChecks::enabled() const {
  return options_.domain_exists || options_.reject_private_mx || !options_.allow_list.empty() ||
         !options_.rhsbl.empty() || !options_.verify_domains.empty();
}

asio::awaitable<std::optional<Refusal>> SenderChecks::Check(const std::string& sender) const {
  const std::string domain = queue::RecipientDomain(sender);
  if (!options_.allow_list.empty()) {
    const std::string lower = LowerAscii(sender);
    if (!allowed_.contains(lower) && !allowed_.contains("@" + domain)) {
      co_return Reject(553, "5.7.1", sender, "not on the list of permitted senders");
    }
  }
  const bool verify = std::find(options_.verify_domains.begin(), options_.verify_domains.end(),
                                domain) != options_.verify_domains.end();
  // DNS knows the A-label form; a name IDNA2008 refuses is looked up as it is (and not found).
  const std::string dns_domain = dns::ToAsciiDomain(domain).value_or(domain);
  if (options_.domain_exists || options_.reject_private_mx || verify) {
    if (auto refusal = co_await CheckDomain(sender, dns_domain, verify)) co_return refusal;
  }
  for (const auto& list : options_.rhsbl) {
    const std::string name = dns_domain + "." + list;
    const dns::AddressAnswer listed = co_await resolver_->LookupAddresses(name, false);
    // RFC 5782 §2.1: an A record in 127/8 means "listed"; a failed lookup or a list's error
    // code lists nobody, and an error code is worth telling the operator about.
    if (listed.rcode != dns::Rcode::kNoError) continue;
    switch (JudgeDnsbl(listed.addresses)) {
      case DnsblAnswer::kListed:
        co_return Reject(554, "5.7.1", sender,
                         fmt::format("domain {} is listed on {}", domain, list));
      case DnsblAnswer::kError:
        Log(Service::kSmtpd)
            .warn(
                "RHSBL {} answered {} for {}: an error code, not a listing (does the list refuse "
                "this resolver, or is its quota used up?); the sender is not refused for it",
                list, queue::Printable(listed.addresses.front(), 64), queue::Printable(name, 255));
        break;
      case DnsblAnswer::kNotListed:
        break;
    }
  }
  co_return std::nullopt;
}

asio::awaitable<std::optional<Refusal>> SenderChecks::CheckDomain(const std::string& sender,
                                                                  const std::string& domain,
                                                                  bool verify) const {
  const auto temporary = [&](const std::string& why) {
    return Reject(450, "4.1.8", sender, "Domain lookup failed: " + why);
  };
  const auto not_found = Reject(550, "5.1.8", sender, "Domain not found");
  const dns::MxAnswer mx = co_await resolver_->LookupMx(domain);
  if (mx.rcode == dns::Rcode::kFailed) {
    if (options_.domain_exists || verify) co_return temporary(mx.why);
    co_return std::nullopt;  // the private-MX check cannot judge; it does not reject on a guess
  }
  if (mx.rcode == dns::Rcode::kNxDomain) {
    if (options_.domain_exists) co_return not_found;
    co_return std::nullopt;
  }
  // The hosts mail would come back to: the MX hosts, or the domain itself (implicit MX).
  std::vector<std::string> hosts;
  // At most this many MX hosts are looked at: a domain with hundreds would otherwise make one
  // MAIL FROM cost hundreds of lookups (Postfix's smtp_mx_address_limit is 5).
  constexpr size_t kMaxHosts = 10;
  for (const auto& r : mx.records) {
    if (hosts.size() >= kMaxHosts) break;
    if (r.host.empty()) {
      // RFC 7505 §4.2: a domain with a null MX sends no mail that could be answered.
      co_return Reject(550, "5.7.27", sender,
                       "Domain " + domain + " does not accept mail (null MX)");
    }
    hosts.push_back(r.host);
  }
  const bool implicit = hosts.empty();
  if (implicit) hosts.push_back(domain);
  bool any_address = !implicit;
  for (const auto& host : hosts) {
    if (options_.reject_private_mx && LowerAscii(host) == "localhost") {
      co_return Reject(550, "5.7.1", sender, fmt::format("mail exchanger {} is localhost", host));
    }
    for (const bool ipv6 : {false, true}) {
      if (!options_.reject_private_mx && !implicit) break;  // nothing to learn here
      const dns::AddressAnswer a = co_await resolver_->LookupAddresses(host, ipv6);
      if (a.rcode == dns::Rcode::kFailed) {
        if (implicit && options_.domain_exists) co_return temporary(a.why);
        continue;
      }
      any_address = any_address || !a.addresses.empty();
      if (!options_.reject_private_mx) continue;
      for (const auto& ip : a.addresses) {
        if (const auto special = SpecialPurpose(ip)) {
          co_return Reject(550, "5.7.1", sender,
                           fmt::format("{} {} has address {} ({}), which is not globally routed",
                                       implicit ? "domain" : "mail exchanger", host, ip, *special));
        }
      }
    }
  }
  if (options_.domain_exists && !any_address) co_return not_found;
  if (verify) co_return co_await Verify(sender, hosts.front());
  co_return std::nullopt;
}

asio::awaitable<std::optional<Refusal>> SenderChecks::Verify(const std::string& sender,
                                                             const std::string& host) const {
  const std::string key = LowerAscii(sender);
  const auto now = std::chrono::steady_clock::now();
  if (auto it = verified_->find(key); it != verified_->end() && it->second.until > now) {
    if (it->second.valid) co_return std::nullopt;
    co_return Reject(550, "5.1.7", sender, "undeliverable address: " + it->second.reply);
  }
  std::string ip;
  for (const bool ipv6 : {false, true}) {
    const dns::AddressAnswer a = co_await resolver_->LookupAddresses(host, ipv6);
    if (!a.addresses.empty()) {
      ip = a.addresses.front();
      break;
    }
  }
  if (ip.empty()) {
    co_return Reject(450, "4.1.7", sender, "unverified address: no address for " + host);
  }
  const ProbeResult r =
      co_await ProbeSender(ip, options_.verify_port, hostname_, sender, std::chrono::seconds(30));
  if (r.verdict == ProbeResult::kUnknown) {
    co_return Reject(450, "4.1.7", sender, "unverified address: " + r.reply);  // not cached
  }
  if (verified_->size() > 100000) {
    std::erase_if(*verified_, [&](const auto& e) { return e.second.until <= now; });
  }
  // Postfix's address_verify_positive_expire_time and ..._negative_expire_time.
  const bool valid = r.verdict == ProbeResult::kValid;
  (*verified_)[key] =
      Verdict{valid, r.reply, now + (valid ? std::chrono::hours(24) : std::chrono::hours(3))};
  if (valid) co_return std::nullopt;
  co_return Reject(550, "5.1.7", sender, "undeliverable address: " + r.reply);
}

}  // namespace danerelay::relay
