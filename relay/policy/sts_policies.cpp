#include "relay/policy/sts_policies.hpp"

#include <spdlog/spdlog.h>
#include <asio/co_spawn.hpp>
#include <asio/use_awaitable.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "dns/lookup.hpp"
#include "queue/committer.hpp"
#include "relay/daemon/logging.hpp"
#include "relay/io/connection.hpp"
#include "relay/io/store_bridge.hpp"
#include "relay/policy/https_client.hpp"

namespace danerelay::relay {
namespace {

constexpr std::chrono::minutes kRetryFailedFetch(5);
constexpr std::size_t kMaxRemembered = 100000;  // domains per map; beyond: start over

bool Valid(const queue::TimePoint fetched, const sts::Policy& p, queue::TimePoint now) {
  return fetched + p.max_age > now;
}

}  // namespace

StsPolicies::StsPolicies(dns::Lookup& resolver, queue::Committer* committer,
                         const MtaStsOptions& options, HttpsFetch fetch)
    : resolver_(resolver), committer_(committer), options_(options), fetch_(std::move(fetch)) {}

StsPolicies::~StsPolicies() { pool_.join(); }

void StsPolicies::FetchEnded(const std::string& domain) {
  if (auto it = fetching_.find(domain); it != fetching_.end()) {
    it->second->cancel();
    fetching_.erase(it);
  }
}

asio::awaitable<std::optional<StsPolicies::Entry>> StsPolicies::Cached(const std::string& domain) {
  if (auto it = memory_.find(domain); it != memory_.end()) co_return it->second;
  if (!committer_ || absent_.contains(domain)) co_return std::nullopt;
  const auto read = [domain](queue::Store& store) { return store.GetStsPolicy(domain); };
  auto row = co_await OnStore(*committer_, read);
  if (row && !*row) {
    if (absent_.size() >= kMaxRemembered) absent_.clear();
    absent_.insert(domain);
  }
  if (!row || !*row) co_return std::nullopt;
  auto policy = sts::ParsePolicy((*row)->policy);
  if (!policy) co_return std::nullopt;
  policy->id = (*row)->id;
  Entry e{std::move(*policy), (*row)->fetched};
  if (memory_.size() >= kMaxRemembered) memory_.clear();
  memory_[domain] = e;
  co_return e;
}

asio::awaitable<tl::expected<sts::Policy, StsPolicies::Failure>> StsPolicies::Fetch(
    const std::string& domain) {
  constexpr std::string_view kFetchError = "sts-policy-fetch-error";
  constexpr std::string_view kInvalid = "sts-policy-invalid";
  HttpsRequest req;
  req.host = "mta-sts." + domain;
  req.port = options_.https_port;
  req.path = "/.well-known/mta-sts.txt";
  req.ca_file = options_.ca_file;
  req.timeout = options_.fetch_timeout;
  req.allow_special_addresses = options_.allow_special_addresses;
  for (const bool v6 : {false, true}) {
    const auto a = co_await resolver_.LookupAddresses(req.host, v6);
    req.addresses.insert(req.addresses.end(), a.addresses.begin(), a.addresses.end());
  }
  if (req.addresses.empty()) {
    co_return tl::unexpected(Failure{std::string(kFetchError), "no address for " + req.host});
  }
  // Named (GCC 12 and temporaries across a co_await); libcurl blocks, so it runs on the pool.
  const auto get = [req,
                    fetch = fetch_]() -> asio::awaitable<tl::expected<HttpsResponse, HttpsError>> {
    co_return fetch(req);
  };
  auto got = co_await asio::co_spawn(pool_, get, asio::use_awaitable);
  if (!got) {
    co_return tl::unexpected(
        Failure{got.error().certificate ? "sts-webpki-invalid" : std::string(kFetchError),
                got.error().message});
  }
  if (got->status != 200) {
    co_return tl::unexpected(
        Failure{std::string(kFetchError),
                fmt::format("https://{}{}: HTTP status {}", req.host, req.path, got->status)});
  }
  // RFC 8461 §3.3: the media type must be text/plain (any case, parameters allowed).
  if (!sts::IsPolicyMediaType(got->content_type)) {
    co_return tl::unexpected(Failure{
        std::string(kInvalid), fmt::format("https://{}{}: Content-Type is '{}', not text/plain",
                                           req.host, req.path, got->content_type)});
  }
  auto policy = sts::ParsePolicy(got->body);
  if (!policy) {
    co_return tl::unexpected(
        Failure{std::string(kInvalid),
                fmt::format("https://{}{}: {}", req.host, req.path, policy.error())});
  }
  co_return *policy;
}

asio::awaitable<StsLookup> StsPolicies::Get(std::string domain) {
  StsLookup out;
  const auto now = queue::Clock::now();
  std::optional<Entry> cached = co_await Cached(domain);
  if (cached && !Valid(cached->fetched, cached->policy, now)) cached.reset();
  auto use_cache = [&](std::string problem, std::string type = "") {
    out.problem = std::move(problem);
    out.problem_type = std::move(type);
    if (cached) {
      out.policy = cached->policy;
      out.cached = true;
    }
    return out;
  };

  // Named: GCC 12 destroys temporaries that live across a co_await twice.
  const std::string txt_name = "_mta-sts." + domain;
  const dns::TxtAnswer txt = co_await resolver_.LookupTxt(txt_name);
  if (txt.rcode == dns::Rcode::kFailed) {
    co_return use_cache(fmt::format("TXT lookup for _mta-sts.{} failed: {}", domain, txt.why));
  }
  const std::optional<std::string> id = sts::ParseTxt(txt.records);
  // No (valid) TXT record: a cached policy still applies until it expires (§3.1, §10.3: a
  // domain leaves MTA-STS by publishing mode none, not by removing the record).
  if (!id) co_return use_cache("");
  // §5.1: the same id is fetched again ahead of expiry (a failure leaves the cached policy
  // in force until then); an identical policy fetched anew renews it.
  if (cached && !sts::FetchDue(cached->policy, cached->fetched, *id, now)) co_return use_cache("");
  if (auto it = failed_.find(domain); it != failed_.end() && it->second.retry > now) {
    co_return use_cache("the last policy fetch failed; not tried again yet", it->second.type);
  }
  if (auto it = fetching_.find(domain); it != fetching_.end()) {
    // Another delivery is fetching this policy: its result (kept in memory_ or failed_) is ours
    // once it ends, within the fetch time limit.
    const auto ended = it->second;
    co_await ended->async_wait(kUseTuple);
    co_return co_await Get(domain);
  }
  const auto executor = co_await asio::this_coro::executor;
  fetching_[domain] =
      std::make_shared<asio::steady_timer>(executor, asio::steady_timer::time_point::max());
  auto fetched = co_await Fetch(domain);
  if (!fetched) {
    if (failed_.size() >= kMaxRemembered) failed_.clear();
    failed_[domain] = Failed{queue::Clock::now() + kRetryFailedFetch, fetched.error().type};
    FetchEnded(domain);
    spdlog::warn("MTA-STS policy of {} (id {}) not fetched: {}{}", domain, *id,
                 LogSafe(fetched.error().text),
                 cached ? fmt::format("; the cached policy (id {}) stays in force",
                                      LogSafe(cached->policy.id))
                        : "");
    co_return use_cache(fetched.error().text, fetched.error().type);
  }
  failed_.erase(domain);
  fetched->id = *id;
  const Entry fresh{*fetched, queue::Clock::now()};
  if (memory_.size() >= kMaxRemembered) memory_.clear();  // the database still has them
  memory_[domain] = fresh;
  absent_.erase(domain);
  FetchEnded(domain);
  std::vector<std::string> safe_mx;
  for (const auto& m : fresh.policy.mx) safe_mx.push_back(LogSafe(m));
  spdlog::info("MTA-STS policy of {}: id {}, mode {}, max_age {}, mx {}", domain, *id,
               sts::ToString(fresh.policy.mode), fresh.policy.max_age.count(),
               fmt::join(safe_mx, " "));
  if (committer_) {
    std::string text = fmt::format("version: STSv1\nmode: {}\nmax_age: {}\n",
                                   sts::ToString(fresh.policy.mode), fresh.policy.max_age.count());
    for (const auto& mx : fresh.policy.mx) text += "mx: " + mx + "\n";
    const queue::Store::StsPolicyRecord record{domain, *id, text, fresh.fetched};
    const auto write = [record](queue::Store& store) { return store.PutStsPolicy(record); };
    if (auto w = co_await OnStore(*committer_, write); !w) {
      spdlog::warn("MTA-STS policy of {} not cached on disk: {}", domain, w.error().message);
    }
  }
  out.policy = fresh.policy;
  co_return out;
}

}  // namespace danerelay::relay
