#include "relay/tlsrpt/tls_reporter.hpp"
#include "relay/dkim/slot.hpp"

#include <spdlog/spdlog.h>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/thread_pool.hpp>
#include <asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <random>
#include <ranges>
#include <set>

#include "dns/resolver.hpp"
#include "queue/committer.hpp"
#include "queue/queue_id.hpp"
#include "relay/daemon/logging.hpp"
#include "relay/daemon/metrics.hpp"
#include "relay/io/connection.hpp"
#include "relay/io/periodic_task.hpp"
#include "relay/io/store_bridge.hpp"
#include "relay/policy/https_client.hpp"
#include "relay/tlsrpt/tls_report.hpp"

namespace danerelay::relay {
namespace {

constexpr auto kDay = std::chrono::hours(24);
// A POST refused for a reason that may pass (no connection, 5xx, 408, 429) is tried again after
// these pauses, across restarts: eight tries in about 21 hours, then it is given up.
constexpr std::chrono::seconds kPostPauses[] = {std::chrono::seconds(30), std::chrono::minutes(5),
                                                std::chrono::minutes(30), std::chrono::hours(1),
                                                std::chrono::hours(2),    std::chrono::hours(6),
                                                std::chrono::hours(12)};
constexpr int kPostTries = std::size(kPostPauses) + 1;
// What was reported stays in tls_reports (`danerelay tls-rpt list`) this long.
constexpr auto kKeepRecords = std::chrono::days(31);
// A domain's TLS-RPT record may name any number of rua URIs; each costs a mail or a POST a day,
// so that a remote domain cannot make us send hundreds: the first few are used (RFC 8460 §3
// sets no limit; DMARC reporters limit theirs likewise).
constexpr std::size_t kMaxRuaUris = 5;

std::string FormatPause(std::chrono::seconds d) {
  const auto n = d.count();
  if (n % 3600 == 0) return fmt::format("{}h", n / 3600);
  if (n % 60 == 0) return fmt::format("{}min", n / 60);
  return fmt::format("{}s", n);
}

queue::TimePoint StartOfUtcDay(queue::TimePoint t) {
  const auto s = std::chrono::time_point_cast<std::chrono::seconds>(t);
  return queue::TimePoint(s - std::chrono::seconds(s.time_since_epoch().count() % 86400));
}

}  // namespace

struct TlsReporter::Impl : std::enable_shared_from_this<Impl> {
  asio::io_context& io;
  dns::Resolver& resolver;
  queue::Committer& committer;
  queue::QueueIdGenerator& ids;
  DeliveryOptions options;
  std::string hostname;
  std::function<void()> queued;
  const dkim::SignerSlot* dkim = nullptr;  // signs report mail
  PeriodicTask task;
  asio::thread_pool pool{1};      // libcurl blocks
  queue::TimePoint next_round{};  // the next daily run (at once after start and reload)
  std::minstd_rand random{std::random_device{}()};

  Impl(asio::io_context& i, dns::Resolver& r, queue::Committer& c, queue::QueueIdGenerator& g,
       DeliveryOptions o, std::string h, std::function<void()> q)
      : io(i),
        resolver(r),
        committer(c),
        ids(g),
        options(std::move(o)),
        hostname(std::move(h)),
        queued(std::move(q)),
        task(i, "the TLS report sender") {}
  ~Impl() { pool.join(); }

  // The reports' sender: the contact when it is an address, else postmaster.
  std::string Sender() const {
    const std::string& c = options.tls_rpt.contact;
    const auto address = MailtoAddress(c.starts_with("mailto:") ? c : "mailto:" + c);
    return address && address->find(':') == std::string::npos ? *address : "postmaster@" + hostname;
  }

  struct PostResult {
    std::string why;    // "" when the report was taken
    bool again = true;  // worth another try
  };

  // POSTs the report to one https: URI.
  asio::awaitable<PostResult> Post(const HttpsUri& uri, const std::string& gz) {
    HttpsRequest req;
    req.host = uri.host;
    req.port = uri.port;
    req.path = uri.path;
    req.ca_file = options.mta_sts.ca_file;
    req.timeout = options.mta_sts.fetch_timeout;
    req.allow_special_addresses = options.mta_sts.allow_special_addresses;
    req.post_body = gz;
    req.post_type = "application/tlsrpt+gzip";
    for (const bool v6 : {false, true}) {
      const auto a = co_await resolver.LookupAddresses(req.host, v6);
      req.addresses.insert(req.addresses.end(), a.addresses.begin(), a.addresses.end());
    }
    if (req.addresses.empty()) co_return PostResult{"no address for " + req.host};
    const auto post = [req]() -> asio::awaitable<tl::expected<HttpsResponse, HttpsError>> {
      co_return HttpsRequestOnce(req);
    };
    auto got = co_await asio::co_spawn(pool, post, asio::use_awaitable);
    // A host at special-purpose addresses is refused for good (a policy, not a failure).
    if (!got) co_return PostResult{got.error().message, !got.error().refused};
    if (got->status < 200 || got->status > 299) {
      // Other answers (a redirect, which is not followed; a 4xx) will not change.
      const bool again = got->status >= 500 || got->status == 408 || got->status == 429;
      co_return PostResult{fmt::format("HTTP status {}", got->status), again};
    }
    co_return PostResult{};
  }

  // The domain's rua URIs (RFC 8460 §3), the first kMaxRuaUris; none when the TXT lookup
  // failed (the report is tried again at the next run).
  asio::awaitable<std::optional<std::vector<std::string>>> RuaOf(const std::string& domain,
                                                                 queue::TimePoint day) {
    // Named: GCC 12 and temporaries across a co_await.
    const std::string txt_name = "_smtp._tls." + domain;
    const dns::TxtAnswer txt = co_await resolver.LookupTxt(txt_name);
    if (txt.rcode == dns::Rcode::kFailed) {
      spdlog::warn(
          "TLS-RPT: TXT lookup for {} failed ({}); the report for {:%Y-%m-%d} is tried "
          "again later",
          txt_name, LogSafe(txt.why), std::chrono::time_point_cast<std::chrono::seconds>(day));
      co_return std::nullopt;
    }
    std::vector<std::string> rua = ParseTlsRptTxt(txt.records);
    if (rua.size() > kMaxRuaUris) {
      spdlog::warn("TLS-RPT: {} names {} rua URIs; only the first {} are used", txt_name,
                   rua.size(), kMaxRuaUris);
      rua.resize(kMaxRuaUris);
    }
    co_return rua;
  }

  // The day's sessions to the domain in each form it was stored under, and its cached MTA-STS
  // policy text; none when the queue cannot be read (logged).
  struct Source {
    std::vector<queue::AttemptRecord> sessions;
    std::string sts_policy;
  };
  asio::awaitable<std::optional<Source>> ReadSource(const std::string& domain,
                                                    const std::vector<std::string>& stored,
                                                    queue::TimePoint day) {
    const auto read = [domain, stored, day](queue::Store& s) {
      tl::expected<std::vector<queue::AttemptRecord>, queue::StoreError> all =
          std::vector<queue::AttemptRecord>();
      for (const auto& form : stored) {
        auto some = s.GetDomainSessions(form, day, day + kDay);
        if (!some) {
          all = tl::unexpected(some.error());
          break;
        }
        all->insert(all->end(), some->begin(), some->end());
      }
      return std::make_pair(std::move(all), s.GetStsPolicy(domain));
    };
    const auto [sessions, policy] = co_await OnStore(committer, read);
    if (!sessions || !policy) {
      spdlog::warn("TLS-RPT: cannot read the sessions of {}: {}", domain,
                   (!sessions ? sessions.error() : policy.error()).message);
      co_return std::nullopt;
    }
    co_return Source{*sessions, *policy ? (*policy)->policy : ""};
  }

  // Where one report goes: one mail to every mailto: address, a POST to every https: URI.
  struct Sends {
    std::optional<queue::NewMessage> mail;
    std::vector<std::string> mail_to;
    std::vector<queue::Store::TlsReportPost> posts;
    std::vector<std::string> outcome;  // for tls_reports
  };

  // The mail (RFC 8460 §5.3), marked as a report so that it gets through (host_planner.hpp)
  // and stays out of the next report.
  queue::NewMessage ReportMail(const std::string& domain, queue::TimePoint day,
                               const std::string& report_id, const std::string& gz,
                               const std::vector<std::string>& to) {
    queue::NewMessage mail;
    mail.id = ids.Next(queue::Clock::now());
    mail.arrival = queue::Clock::now();
    mail.sender = Sender();
    mail.protocol = "local";
    mail.tls_report = true;
    for (const auto& address : to) mail.recipients.push_back({address, queue::kNotifyNever, ""});
    TlsReportMail m;
    m.from = mail.sender;
    m.recipients = to;
    m.domain = domain;
    m.submitter = ReportSubmitter(m.from);
    m.report_id = report_id;
    m.begin = day;
    m.end = day + kDay - std::chrono::seconds(1);
    m.gzipped_json = gz;
    m.message_id = mail.id;
    m.now = queue::Clock::now();
    mail.content = ComposeTlsReportMail(m);
    // RFC 8460 §3: reports are DKIM-signed, or receivers may ignore them.
    if (dkim) dkim->SignOwn(mail.content, mail.id);
    return mail;
  }

  Sends SendsFor(const std::vector<std::string>& rua, const queue::Store::TlsReportRecord& record,
                 const std::string& gz) {
    Sends out;
    for (const auto& uri : rua) {
      if (const auto address = MailtoAddress(uri)) {
        out.mail_to.push_back(*address);
      } else if (const auto https = ParseHttpsUri(uri)) {
        queue::Store::TlsReportPost p;
        p.domain = record.domain;
        p.day = record.day;
        p.url = fmt::format("https://{}:{}{}", https->host, https->port, https->path);
        p.report_id = record.report_id;
        p.payload = gz;
        p.next = record.made;
        out.posts.push_back(std::move(p));
      } else {
        out.outcome.push_back(fmt::format("{}: not a usable URI", uri));
      }
    }
    if (!out.mail_to.empty()) {
      out.mail = ReportMail(record.domain, record.day, record.report_id, gz, out.mail_to);
      out.outcome.push_back(fmt::format("mail queued as {}", out.mail->id));
    }
    return out;
  }

  // Logs the sessions as the report counts them (RFC 8460 §4.4), not the attempt rows.
  void LogSent(const queue::Store::TlsReportRecord& record, const nlohmann::json& report,
               const Sends& sends) {
    int failed = 0, sessions = 0;
    for (const auto& p : report.value("policies", nlohmann::json::array())) {
      failed += p["summary"].value("total-failure-session-count", 0);
      sessions += p["summary"].value("total-successful-session-count", 0);
    }
    sessions += failed;
    if (sends.mail) {
      Metrics::Get().Add("danerelay_tls_rpt_reports_total", "outcome=\"mail_queued\"");
      spdlog::info(
          "TLS-RPT: report {} for {} ({} session(s), {} failed): {} <{}> to {}", record.report_id,
          record.domain, sessions, failed, sends.mail->id, sends.mail->sender,
          fmt::join(sends.mail_to | std::views::transform([](const auto& a) { return LogSafe(a); }),
                    ", "));
      if (queued) queued();
    }
    if (!sends.posts.empty()) {
      spdlog::info("TLS-RPT: report {} for {} ({} session(s), {} failed) to be posted to {}",
                   record.report_id, record.domain, sessions, failed,
                   fmt::join(sends.posts | std::views::transform(
                                               [](const auto& p) { return LogSafe(p.url); }),
                             ", "));
    }
  }

  // `domain`: the A-label form, for the TXT lookup, the cached MTA-STS policy and the report;
  // `stored`: the forms the day's recipients were stored under (U-labels, A-labels). The
  // report, its mail and its POSTs are recorded in one transaction (sent once).
  asio::awaitable<void> Report(const std::string& domain, const std::vector<std::string>& stored,
                               queue::TimePoint day) {
    const std::optional<std::vector<std::string>> rua = co_await RuaOf(domain, day);
    if (!rua) co_return;
    queue::Store::TlsReportRecord record{
        domain, day, "", queue::Clock::now(), fmt::format("{}", fmt::join(*rua, " ")), ""};
    if (rua->empty()) {
      record.outcome = "not sent: no TLS-RPT policy (_smtp._tls TXT with rua=)";
      const auto put = [record](queue::Store& s) { return s.PutTlsReport(record); };
      co_await OnStoreWrite(committer, put);
      co_return;
    }
    const std::optional<Source> source = co_await ReadSource(domain, stored, day);
    if (!source) co_return;
    const nlohmann::json report = BuildTlsReport(domain, day, source->sessions, source->sts_policy,
                                                 MakeTlsReportHeader(options.tls_rpt, hostname));
    record.report_id = report.value("report-id", "");
    const std::string gz =
        Gzip(report.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    const Sends sends = SendsFor(*rua, record, gz);
    record.outcome = fmt::format("{}", fmt::join(sends.outcome, "; "));
    const auto put = [record, mail = sends.mail, posts = sends.posts](queue::Store& s) {
      return s.PutTlsReport(record, mail ? &*mail : nullptr, posts);
    };
    if (auto w = co_await OnStoreWrite(committer, put); !w) {
      spdlog::warn("TLS-RPT: report {} not recorded, not sent: {}", record.report_id,
                   w.error().message);
      co_return;
    }
    LogSent(record, report, sends);
  }

  // The POSTs that are due: each tried once; taken, given up, or its next try set.
  asio::awaitable<void> PostDue() {
    const auto now = queue::Clock::now();
    const auto read = [now](queue::Store& s) { return s.GetDueTlsReportPosts(now); };
    const auto due = co_await OnStore(committer, read);
    if (!due) {
      spdlog::warn("TLS-RPT: cannot read the reports to post: {}", due.error().message);
      co_return;
    }
    for (queue::Store::TlsReportPost p : *due) {
      if (task.stopping() || !options.tls_rpt.enabled) co_return;
      const auto uri = ParseHttpsUri(p.url);
      PostResult got{"not a usable URI", false};
      if (uri) got = co_await Post(*uri, p.payload);  // (no co_await in ?: with GCC 12)
      ++p.tries;
      p.last_error = got.why;
      if (got.why.empty()) {
        p.state = "posted";
        Metrics::Get().Add("danerelay_tls_rpt_reports_total", "outcome=\"https_posted\"");
        spdlog::info("TLS-RPT: report {} for {} posted to {} (try {})", p.report_id, p.domain,
                     LogSafe(p.url), p.tries);
      } else if (got.again && p.tries < kPostTries) {
        const auto pause = kPostPauses[p.tries - 1];
        p.next = queue::Clock::now() + pause;
        spdlog::info("TLS-RPT: report {} not taken by {}: {}; trying again in {} (try {} of {})",
                     p.report_id, LogSafe(p.url), LogSafe(got.why), FormatPause(pause), p.tries + 1,
                     kPostTries);
      } else {
        p.state = "failed";
        Metrics::Get().Add("danerelay_tls_rpt_reports_total", "outcome=\"https_failed\"");
        spdlog::warn("TLS-RPT: report {} for {} could not be posted to {}: {}; given up after {}",
                     p.report_id, p.domain, LogSafe(p.url), LogSafe(got.why), Tries(p.tries));
      }
      const auto update = [p](queue::Store& s) { return s.UpdateTlsReportPost(p); };
      if (auto w = co_await OnStoreWrite(committer, update); !w) {
        spdlog::warn("TLS-RPT: cannot record the POST of report {}: {}", p.report_id,
                     w.error().message);
      }
    }
  }

  // The reports not yet made for yesterday and the day before; records older than kKeepRecords
  // are dropped.
  asio::awaitable<void> Round() {
    const auto today = StartOfUtcDay(queue::Clock::now());
    const auto purge = [before = today - kKeepRecords](queue::Store& s) {
      return s.PurgeTlsReports(before);
    };
    co_await OnStoreWrite(committer, purge);
    for (const auto day : {today - 2 * kDay, today - kDay}) {
      const auto read = [day](queue::Store& s) {
        return std::make_pair(s.GetSessionDomains(day, day + kDay), s.GetTlsReports(day));
      };
      const auto [domains, made] = co_await OnStore(committer, read);
      if (!domains || !made) {
        spdlog::warn("TLS-RPT: cannot read the queue: {}",
                     (!domains ? domains.error() : made.error()).message);
        co_return;
      }
      std::set<std::string> done;
      for (const auto& r : *made) done.insert(r.domain);
      // By A-label: an IDN domain's TLS-RPT record is looked up, and reported, in that form.
      // Named: GCC 12 and temporaries across a co_await.
      const auto by_ascii = ReportDomains(*domains);
      for (const auto& [domain, stored] : by_ascii) {
        if (task.stopping() || !options.tls_rpt.enabled) co_return;
        if (done.contains(domain) || FindRoute(options.routes, "", domain)) continue;
        co_await Report(domain, stored, day);
      }
    }
  }

  // The daily report run when it is due, the posts that are due, and the wait until the next
  // of either (a day while disabled: asleep until a reload pokes it).
  asio::awaitable<std::optional<std::chrono::steady_clock::duration>> Step() {
    if (options.tls_rpt.enabled && queue::Clock::now() >= next_round) {
      co_await Round();
      // Next: 00:05 to 00:35 UTC (RFC 8460 §4.1 asks reporters to spread their load).
      next_round = StartOfUtcDay(queue::Clock::now()) + kDay + std::chrono::minutes(5) +
                   std::chrono::seconds(random() % 1800);
    }
    if (options.tls_rpt.enabled && !task.stopping()) co_await PostDue();
    if (task.stopping()) co_return std::nullopt;
    auto wake = queue::Clock::now() + kDay;
    if (options.tls_rpt.enabled) {
      wake = next_round;
      const auto read = [](queue::Store& s) { return s.NextTlsReportPost(); };
      if (const auto post = co_await OnStore(committer, read); post && *post) {
        wake = std::min(wake, **post);
      }
    }
    const auto now = queue::Clock::now();
    co_return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::max(wake - now, queue::Clock::duration(std::chrono::seconds(1))));
  }
};

TlsReporter::TlsReporter(asio::io_context& io, dns::Resolver& resolver, queue::Committer& committer,
                         queue::QueueIdGenerator& ids, DeliveryOptions options,
                         std::string hostname, std::function<void()> queued)
    : impl_(std::make_shared<Impl>(io, resolver, committer, ids, std::move(options),
                                   std::move(hostname), std::move(queued))) {}

TlsReporter::~TlsReporter() { Stop(); }

void TlsReporter::Start() {
  impl_->task.Start([self = impl_] { return self->Step(); });
}

void TlsReporter::Stop() { impl_->task.Stop(); }

void TlsReporter::UseDkim(const dkim::SignerSlot* slot) { impl_->dkim = slot; }

void TlsReporter::Reload(const DeliveryOptions& options, const std::string& hostname) {
  impl_->options = options;
  impl_->hostname = hostname;
  impl_->next_round = {};
  impl_->task.Poke();
}

}  // namespace danerelay::relay
