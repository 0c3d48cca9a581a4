#include "tools/cli/queue_admin.hpp"

#include <algorithm>
#include <cstdlib>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <pwd.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include "queue/notice.hpp"
#include "queue/queue_id.hpp"
#include "queue/queue_lock.hpp"
#include "relay/delivery/shaping_status.hpp"
#include "relay/dkim/slot.hpp"
#include "relay/health/preflight.hpp"
#include "relay/health/resolver_health.hpp"
#include "tools/cli/queue_suspend.hpp"

namespace danerelay::tools {
namespace {

std::string_view Verb(AdminAction a) {
  switch (a) {
    case AdminAction::kFlush:
      return "flush";
    case AdminAction::kHold:
      return "hold";
    case AdminAction::kRelease:
      return "release";
    case AdminAction::kDelete:
      return "delete";
    case AdminAction::kBounce:
      return "bounce";
  }
  return "?";
}

}  // namespace

// Who acts, for the daemon's log: the user running the command, or under sudo the user who ran
// sudo (root can set SUDO_USER, but root may do anything anyway).
std::string OperatorName() {
  const passwd* pw = getpwuid(getuid());
  std::string name = pw ? std::string(pw->pw_name) : std::to_string(getuid());
  const char* sudo = std::getenv("SUDO_USER");
  if (getuid() == 0 && sudo && *sudo && name != sudo) {
    name = queue::Printable(sudo, 64) + " via sudo";
  }
  return name;
}

namespace {

bool Empty(const queue::Store::Selection& s) {
  return s.ids.empty() && s.domain.empty() && s.sender.empty() && !s.state && !s.arrived_before;
}

// What an action did: the count and the messages, as text or JSON.
void PrintTouched(const AdminRequest& req, const queue::Store::Touched& done, std::ostream& out) {
  if (req.json) {
    out << nlohmann::json{{"action", std::string(Verb(req.action))},
                          {"messages", done.messages},
                          {"recipients", done.recipients}}
               .dump()
        << "\n";
    return;
  }
  out << fmt::format("{}: {} recipient{} in {} message{}\n", Verb(req.action), done.recipients,
                     done.recipients == 1 ? "" : "s", done.messages.size(),
                     done.messages.size() == 1 ? "" : "s");
  for (const auto& id : done.messages) out << "  " << id << "\n";
}

}  // namespace

int RunAdmin(const config::Config& config, const AdminRequest& req, std::ostream& out,
             std::ostream& err) {
  if (Empty(req.selection) && !req.all) {
    err << fmt::format(
        "danerelay: queue {}: name queue IDs or a filter (--domain, --sender, --state, "
        "--older-than), or --all\n",
        Verb(req.action));
    return 1;
  }
  auto store = queue::Store::Open(config.queue, queue::OpenMode::kReadWriteExisting);
  if (!store) {
    err << "danerelay: " << store.error().message << "\n";
    return 2;
  }
  const auto now = queue::Clock::now();
  queue::QueueIdGenerator ids;
  // The change and the operator log in one transaction; the daemon logs who did it (a flush
  // only makes mail due sooner, and is not logged, as Postfix's postqueue -f).
  queue::Store::Selection selection = req.selection;
  if (req.action != AdminAction::kFlush) {
    selection.by = queue::Store::Selection::Operator{OperatorName(), std::string(Verb(req.action))};
  }
  relay::dkim::SignerSlot dkim;
  const auto act = [&]() -> tl::expected<queue::Store::Touched, queue::StoreError> {
    switch (req.action) {
      case AdminAction::kFlush:
        return (*store)->Flush(selection, now);
      case AdminAction::kHold:
        return (*store)->Hold(selection);
      case AdminAction::kRelease:
        return (*store)->Release(selection, now);
      case AdminAction::kDelete:
        return (*store)->Delete(selection);
      case AdminAction::kBounce: {
        queue::NoticeOptions options{config.server.hostname};
        // Signed as danerelayd signs its notices; a key that does not load leaves them unsigned.
        if (auto loaded = dkim.Load(config.server.dkim, config.server.hostname); !loaded) {
          fmt::print(stderr, "danerelay: bounces go unsigned: [dkim] {}\n", loaded.error());
        } else {
          options.sign = [&](std::string& c, const std::string& id) { dkim.SignOwn(c, id); };
        }
        return (*store)->Finish(
            selection, queue::RecipientState::kFailed, "5.0.0",
            "returned to the sender by the mail administrator", queue::Cause::kOperator, now,
            [&](const queue::MessageInfo& m, const std::string& content,
                const std::vector<queue::StoredRecipient>& finished) {
              return queue::ComposeBounce(m, content, finished, ids.Next(now), now, options);
            });
      }
    }
    return tl::unexpected(queue::StoreError{"unknown action"});
  };
  auto done = act();
  // On a full disk even a deletion needs room (for the write-ahead log): delete and bounce,
  // the ways out of it, take the reserve danerelayd keeps for them and try once more.
  const bool frees = req.action == AdminAction::kDelete || req.action == AdminAction::kBounce;
  if (!done && frees && queue::IsDiskFull(done.error()) && (*store)->GiveBackReserve()) {
    err << fmt::format(
        "danerelay: the queue's disk is full: gave the {} MiB reserve ({}) back and tried again\n",
        queue::Store::kReserveBytes >> 20, queue::Store::ReservePath(config.queue).string());
    done = act();
  }
  if (!done) {
    err << "danerelay: " << done.error().message
        << (frees && queue::IsDiskFull(done.error())
                ? " (the queue's disk is full: free space there, or act on fewer messages at "
                  "once with --domain, --sender or --older-than)"
                : "")
        << "\n";
    return 2;
  }
  // The change is logged by danerelayd (from the operator log written with it), as Postfix's
  // postsuper logs what it does: the mail log may not be writable by the operator.

  // Queue IDs that matched nothing: a typo, a message already gone, or nothing in it to act on.
  int status = 0;
  for (const auto& id : req.selection.ids) {
    if (std::find(done->messages.begin(), done->messages.end(), id) == done->messages.end()) {
      err << fmt::format("danerelay: {}: no such message in the queue, or nothing in it to {}\n",
                         id, Verb(req.action));
      status = 1;
    }
  }
  PrintTouched(req, *done, out);
  return status;
}

namespace {

constexpr std::array<int, queue::Store::kShapeBuckets - 1> kLimits = {5,   10,  20,  40,  80,
                                                                      160, 320, 640, 1280};

// What `queue stats` shows, gathered from the store and the daemon's status files.
struct StatsReport {
  queue::Store::Stats st;
  std::vector<std::array<int, queue::Store::kShapeBuckets>> shape;
  long long oldest = 0;  // seconds
  bool resolver_ok = true;
  std::string resolver;
  int preflight_failing = 0;
  std::vector<std::string> preflight;
  queue::Store::Space space;
  std::int64_t file_bytes = 0, free_bytes = 0;
  std::vector<queue::Store::Suspension> suspensions;  // in force
  queue::Store::SiteCounts sites;
  std::string shaping;  // what danerelayd holds (shaping_status.hpp), "" for nothing
  nlohmann::json shaping_json;
};

constexpr size_t kTopSites = 20;

// The suspension in force of `site`, if any.
const queue::Store::Suspension* SiteSuspension(const StatsReport& r, const std::string& site) {
  for (const auto& s : r.suspensions) {
    if (s.kind == "site" && s.name == site) return &s;
  }
  return nullptr;
}

nlohmann::json SitesJson(const StatsReport& r) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [site, n] : r.sites.top) {
    const auto* s = SiteSuspension(r, site);
    out.push_back({{"site", site},
                   {"recipients", n},
                   {"suspension", s ? SuspensionJson(*s) : nlohmann::json(nullptr)}});
  }
  return out;
}

// Where the waiting mail goes, by site (the delivery's grouping: a provider, an MX host set, a
// route), with the suspension of each that has one.
void PrintSites(const StatsReport& r, std::ostream& out) {
  const auto& sites = r.sites;
  if (sites.top.empty() && sites.unknown == 0) return;
  const size_t known = sites.top.size() + static_cast<size_t>(sites.more_sites);
  out << fmt::format(
      "sites: queued and deferred recipients by site{}\n",
      sites.more_sites > 0 ? fmt::format(" (the {} largest of {})", sites.top.size(), known) : "");
  for (const auto& [site, n] : sites.top) {
    const auto* s = SiteSuspension(r, site);
    out << fmt::format("  {:>7}  {}{}\n", n, site, s ? ": " + SuspensionText(*s) : "");
  }
  if (sites.more_sites > 0) {
    out << fmt::format("  {:>7}  in {} more site{}\n", sites.more_recipients, sites.more_sites,
                       sites.more_sites == 1 ? "" : "s");
  }
  if (sites.unknown > 0) {
    out << fmt::format("  {:>7}  (site not yet known: no attempt has found it yet)\n",
                       sites.unknown);
  }
}

void PrintStatsJson(const StatsReport& r, std::ostream& out) {
  const auto& st = r.st;
  nlohmann::json top = nlohmann::json::array();
  for (size_t i = 0; i < st.top_domains.size(); ++i) {
    top.push_back({{"domain", st.top_domains[i].first},
                   {"recipients", st.top_domains[i].second},
                   {"age_buckets", r.shape[i]}});
  }
  out << nlohmann::json{{"messages", st.messages},
                        {"recipients_by_state", st.recipients_by_state},
                        {"oldest_age_seconds",
                         st.oldest_arrival ? nlohmann::json(r.oldest) : nlohmann::json(nullptr)},
                        {"top_destinations", top},
                        {"age_bucket_minutes", kLimits},
                        {"resolver_validation_ok", r.resolver.empty()
                                                       ? nlohmann::json(nullptr)
                                                       : nlohmann::json(r.resolver_ok)},
                        {"resolver", r.resolver},
                        {"preflight_failing_domains", r.preflight.empty()
                                                          ? nlohmann::json(nullptr)
                                                          : nlohmann::json(r.preflight_failing)},
                        {"preflight", r.preflight},
                        {"queue_file_bytes", r.file_bytes},
                        {"queue_file_free_bytes", r.free_bytes},
                        {"queue_file_gives_back_free_space", r.space.incremental},
                        {"suspensions", SuspensionsJson(r.suspensions)},
                        {"sites", SitesJson(r)},
                        {"sites_not_shown", r.sites.more_sites},
                        {"sites_not_shown_recipients", r.sites.more_recipients},
                        {"site_unknown_recipients", r.sites.unknown},
                        {"shaping", r.shaping_json}}
             .dump()
      << "\n";
}

void PrintStatsText(const StatsReport& r, std::ostream& out) {
  const auto& st = r.st;
  if (!r.resolver.empty()) out << r.resolver << "\n";
  const auto mib = [](std::int64_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); };
  out << fmt::format(
      "queue file:  {:.1f} MiB, {:.1f} MiB of it free{}\n", mib(r.file_bytes), mib(r.free_bytes),
      r.space.incremental ? ""
      : r.free_bytes > 0
          ? " (kept: `danerelay queue compact` with danerelayd stopped gives it back)"
          : "");
  for (const auto& line : r.preflight) out << line << "\n";
  for (const auto& line : SuspensionLines(r.suspensions)) out << line << "\n";
  out << fmt::format("messages:    {}\n", st.messages);
  for (const auto& [state, n] : st.recipients_by_state) {
    out << fmt::format("  {:<11} {}\n", state, n);
  }
  if (st.oldest_arrival) {
    out << fmt::format("oldest:      {}d {:02}h {:02}m\n", r.oldest / 86400,
                       r.oldest % 86400 / 3600, r.oldest % 3600 / 60);
  }
  if (!st.top_domains.empty()) {
    out << "top destinations: pending recipients by the age of their message (minutes, like "
           "qshape)\n";
    out << fmt::format("  {:<30} {:>6}", "", "T");
    for (int limit : kLimits) out << fmt::format(" {:>5}", limit);
    out << fmt::format(" {:>5}\n", fmt::format("{}+", kLimits.back()));
  }
  for (size_t i = 0; i < st.top_domains.size(); ++i) {
    out << fmt::format("  {:<30} {:>6}", st.top_domains[i].first, st.top_domains[i].second);
    for (int n : r.shape[i]) out << fmt::format(" {:>5}", n);
    out << "\n";
  }
  PrintSites(r, out);
  out << r.shaping;
}

}  // namespace

int RunStats(const config::Config& config, bool json, std::ostream& out, std::ostream& err) {
  auto store = queue::Store::Open(config.queue, queue::OpenMode::kReadOnly);
  if (!store) {
    err << "danerelay: " << store.error().message << "\n";
    return 2;
  }
  StatsReport r;
  auto st = (*store)->GetStats(10);
  if (!st) {
    err << "danerelay: " << st.error().message << "\n";
    return 2;
  }
  r.st = std::move(*st);
  const auto now = queue::Clock::now();
  if (r.st.oldest_arrival) {
    r.oldest = std::chrono::duration_cast<std::chrono::seconds>(now - *r.st.oldest_arrival).count();
  }
  // Age buckets of the top destinations, like Postfix's qshape.
  std::vector<std::string> top_names;
  for (const auto& [d, n] : r.st.top_domains) top_names.push_back(d);
  auto shape = (*store)->GetShape(top_names, now);
  if (!shape) {
    err << "danerelay: " << shape.error().message << "\n";
    return 2;
  }
  r.shape = std::move(*shape);
  r.resolver = relay::DescribeResolverStatus(config.queue.path, &r.resolver_ok);
  r.shaping = relay::DescribeShapingStatus(config.queue.path, &r.shaping_json);
  r.preflight = relay::DescribePreflightStatus(config.queue.path, &r.preflight_failing);
  auto space = (*store)->GetSpace();
  if (!space) {
    err << "danerelay: " << space.error().message << "\n";
    return 2;
  }
  r.space = *space;
  r.file_bytes = space->pages * space->page_size;
  auto suspended = (*store)->ListSuspensions(now);
  if (!suspended) {
    err << "danerelay: " << suspended.error().message << "\n";
    return 2;
  }
  r.suspensions = std::move(*suspended);
  r.free_bytes = space->free_pages * space->page_size;
  auto sites = (*store)->GetSites(kTopSites);
  if (!sites) {
    err << "danerelay: " << sites.error().message << "\n";
    return 2;
  }
  r.sites = std::move(*sites);
  json ? PrintStatsJson(r, out) : PrintStatsText(r, out);
  return 0;
}

int RunCompact(const config::Config& config, std::ostream& out, std::ostream& err) {
  // VACUUM holds the write lock for as long as it copies the file: beside a running daemon it
  // would stall acceptance and delivery. The daemon's lock says whether one runs.
  auto store = queue::Store::Open(config.queue, queue::OpenMode::kReadWriteExisting);
  if (!store) {
    err << "danerelay: " << store.error().message << "\n";
    return 2;
  }
  auto lock = queue::QueueLock::Acquire(config.queue.path);
  if (!lock) {
    err << "danerelay: queue compact: " << lock.error()
        << "; stop it first (compacting rewrites the whole queue file)\n";
    return 2;
  }
  auto before = (*store)->GetSpace();
  if (!before) {
    err << "danerelay: " << before.error().message << "\n";
    return 2;
  }
  if (auto done = (*store)->Compact(); !done) {
    err << "danerelay: queue compact: " << done.error().message << "\n";
    return 2;
  }
  auto after = (*store)->GetSpace();
  if (!after) {
    err << "danerelay: " << after.error().message << "\n";
    return 2;
  }
  const auto mib = [](const queue::Store::Space& s) {
    return static_cast<double>(s.pages * s.page_size) / (1024.0 * 1024.0);
  };
  out << fmt::format(
      "{}: {:.1f} MiB before, {:.1f} MiB now; from now on danerelayd gives free space back "
      "itself\n",
      queue::Store::DatabasePath(config.queue).string(), mib(*before), mib(*after));
  return 0;
}

int RunBackup(const config::Config& config, const std::string& file, std::ostream& out,
              std::ostream& err) {
  auto store = queue::Store::Open(config.queue, queue::OpenMode::kReadOnly);
  if (!store) {
    err << "danerelay: " << store.error().message << "\n";
    return 2;
  }
  auto info = (*store)->Backup(file);
  if (!info) {
    err << "danerelay: queue backup: " << info.error().message << "\n";
    return 2;
  }
  out << fmt::format(
      "{}: {} messages ({} not yet completed), schema version {}, {:.1f} MiB; restore with "
      "danerelayd stopped (danerelay(8), BACKUP AND RESTORE)\n",
      file, info->messages, info->pending_messages, info->schema_version,
      static_cast<double>(info->bytes) / (1024.0 * 1024.0));
  return 0;
}

}  // namespace danerelay::tools
