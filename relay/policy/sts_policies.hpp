#pragma once
// MTA-STS policies (RFC 8461 §3, §5) as delivery sees them: the TXT record at
// _mta-sts.<domain>, the policy fetched over HTTPS when its id is new, kept in memory and in
// the queue's database (sts_policies) for max_age, so that it survives restarts and keeps
// applying while its server is down. A policy whose id stays the same is fetched again ahead of
// its expiry (RFC 8461 §5.1, sts::FetchDue), which renews it. A fetch that fails is not tried again
// for five minutes. Fetches run on a few workers (libcurl blocks), one at a time per domain, so a
// policy host that hangs until the fetch time limit holds one worker, never the other domains'
// fetches.
#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "queue/message.hpp"
#include "relay/options.hpp"
#include "relay/policy/https_client.hpp"
#include "relay/policy/mta_sts.hpp"

namespace danerelay::dns {
class Lookup;
}
namespace danerelay::queue {
class Committer;
}

namespace danerelay::relay {

struct StsLookup {
  std::optional<sts::Policy> policy;  // in force for the domain, fresh or cached
  bool cached = false;                // from the cache (the TXT id did not change, or a fetch
                                      // failed while the cached policy is still valid)
  // Why no fresh policy could be had (logged): a failed TXT lookup, fetch or parse.
  std::string problem;
  // The RFC 8460 §4.3.2 result type of a failed fetch (sts-policy-fetch-error,
  // sts-policy-invalid, sts-webpki-invalid), for TLS-RPT; "" when none failed.
  std::string problem_type;
};

class StsPolicies {
 public:
  // How a policy file is fetched: HttpsRequestOnce, or a unit test's stand-in. It blocks, so
  // it runs on the fetch workers.
  using HttpsFetch = std::function<tl::expected<HttpsResponse, HttpsError>(const HttpsRequest&)>;
  // `committer`: the queue, for the persistent cache; nullptr keeps policies in memory only.
  StsPolicies(dns::Lookup& resolver, queue::Committer* committer, const MtaStsOptions& options,
              HttpsFetch fetch = HttpsRequestOnce);
  ~StsPolicies();

  // By value: the coroutine outlives its caller's temporaries.
  asio::awaitable<StsLookup> Get(std::string domain);
  void Reload(const MtaStsOptions& options) { options_ = options; }

 private:
  struct Entry {
    sts::Policy policy;
    queue::TimePoint fetched;
  };
  asio::awaitable<std::optional<Entry>> Cached(const std::string& domain);
  struct Failure {
    std::string type;  // the RFC 8460 result type
    std::string text;
  };
  asio::awaitable<tl::expected<sts::Policy, Failure>> Fetch(const std::string& domain);

  dns::Lookup& resolver_;
  queue::Committer* committer_;
  MtaStsOptions options_;
  HttpsFetch fetch_;
  asio::thread_pool pool_{4};  // libcurl blocks
  // The fetches under way, by domain: another Get() for the domain waits for the timer (never
  // expiring, cancelled when the fetch ends) instead of fetching again.
  std::map<std::string, std::shared_ptr<asio::steady_timer>> fetching_;
  void FetchEnded(const std::string& domain);
  std::map<std::string, Entry> memory_;
  // Domains known to have no policy in the database (only this daemon writes it), so that
  // delivery to a domain without MTA-STS costs no database read. Both maps are bounded.
  std::set<std::string> absent_;
  struct Failed {
    queue::TimePoint retry;  // no new fetch before then
    std::string type;        // what went wrong the last time
  };
  std::map<std::string, Failed> failed_;
};

}  // namespace danerelay::relay
