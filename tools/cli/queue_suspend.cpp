#include "tools/cli/queue_suspend.hpp"

#include <algorithm>
#include <cctype>
#include <optional>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "queue/message.hpp"
#include "relay/delivery/sites.hpp"
#include "tools/cli/queue_admin.hpp"

namespace danerelay::tools {
namespace {

constexpr int kExitUsage = 64;

std::string Utc(queue::TimePoint t) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}",
                     std::chrono::time_point_cast<std::chrono::seconds>(t));
}

bool PlausibleDomain(const std::string& d) {
  return !d.empty() && d.size() <= 253 && d.find_first_of("@ \t\r\n") == std::string::npos;
}

// A site's name (relay/delivery/sites.hpp) is printable ASCII without spaces, but for the
// one after "route " in a routed domain's ("route [192.0.2.1]:2525,relay.example.net").
bool PlausibleSite(std::string_view s) {
  if (s.size() > 1000) return false;
  if (s.starts_with("route ")) s.remove_prefix(6);
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c > ' ' && c <= '~'; });
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The suspension's kind and name, or nullopt after saying what is wrong with the arguments.
struct Target {
  std::string kind, name;
};
std::optional<Target> ReadTarget(const SuspendTarget& t, std::string_view command,
                                 std::ostream& err) {
  if (t.domain.empty() == t.site.empty()) {
    err << "danerelay: queue " << command << ": name exactly one of --domain and --site\n";
    return std::nullopt;
  }
  if (!t.domain.empty()) {
    if (!PlausibleDomain(t.domain)) {
      err << "danerelay: queue " << command << ": --domain " << queue::Printable(t.domain, 300)
          << ": not a domain\n";
      return std::nullopt;
    }
    return Target{"domain", Lower(t.domain)};
  }
  std::string site = Lower(t.site);
  if (!PlausibleSite(site)) {
    err << "danerelay: queue " << command << ": --site " << queue::Printable(t.site, 300)
        << ": not a site (printable ASCII without spaces but for \"route \", at most 1000 "
           "bytes, as queue stats and queue show name it)\n";
    return std::nullopt;
  }
  return Target{"site", std::move(site)};
}

// Whether `site` is one mail has gone or goes to, a route's or a provider's.
bool KnownSite(const config::Config& config, queue::Store& store, const std::string& site) {
  if (relay::IsProviderSite(site, config.delivery.providers)) return true;
  for (const auto& [domain, route] : config.delivery.routes.by_domain) {
    if (Lower(relay::SiteOfRoute(route)) == site) return true;
  }
  for (const auto& [sender, route] : config.delivery.routes.by_sender) {
    if (Lower(relay::SiteOfRoute(route)) == site) return true;
  }
  const auto known = store.KnowsSite(site);
  return !known || *known;  // a failed read: no warning
}

}  // namespace

int RunSuspend(const config::Config& config, const SuspendRequest& req, std::ostream& out,
               std::ostream& err) {
  const auto target = ReadTarget(req.target, "suspend", err);
  if (!target) return kExitUsage;
  const auto length = config::ParseDuration(req.duration);
  if (!length || length->count() <= 0) {
    err << "danerelay: queue suspend: --for " << req.duration
        << ": expected a duration such as 30m, 2h or 3d\n";
    return kExitUsage;
  }
  auto store = queue::Store::Open(config.queue, queue::OpenMode::kReadWriteExisting);
  if (!store) {
    err << "danerelay: " << store.error().message << "\n";
    return 2;
  }
  queue::Store::Suspension s;
  s.kind = target->kind;
  s.name = target->name;
  s.created = queue::Clock::now();
  s.until = s.created + *length;
  s.reason = queue::Printable(req.reason, 200);
  s.user = OperatorName();
  if (auto r = (*store)->Suspend(s); !r) {
    err << "danerelay: queue suspend: " << r.error().message << "\n";
    return 2;
  }
  out << fmt::format("{} {} suspended until {}\n", s.kind, s.name, Utc(s.until));
  if (s.kind == "site" && !KnownSite(config, **store, s.name)) {
    err << fmt::format(
        "danerelay: warning: no mail in the queue has gone or goes to site {}, and no route or "
        "provider is named so; sites are named as queue stats and queue show name them, such as "
        "\"route [192.0.2.1]:25\", \"google\" or \"mx1.example.net,mx2.example.net\"\n",
        s.name);
  }
  return 0;
}

int RunResume(const config::Config& config, const SuspendTarget& req, std::ostream& out,
              std::ostream& err) {
  const auto target = ReadTarget(req, "resume", err);
  if (!target) return kExitUsage;
  auto store = queue::Store::Open(config.queue, queue::OpenMode::kReadWriteExisting);
  if (!store) {
    err << "danerelay: " << store.error().message << "\n";
    return 2;
  }
  auto r = (*store)->Resume(target->kind, target->name, queue::Clock::now());
  if (!r) {
    err << "danerelay: queue resume: " << r.error().message << "\n";
    return 2;
  }
  if (!*r) {
    err << "danerelay: queue resume: " << target->kind << " " << target->name
        << " is not suspended\n";
    return 1;
  }
  out << fmt::format("{} {} resumed\n", target->kind, target->name);
  return 0;
}

std::string SuspensionText(const queue::Store::Suspension& s) {
  return fmt::format("suspended until {}: {} (by {}{})", Utc(s.until),
                     s.reason.empty() ? "no reason given" : s.reason, s.user,
                     s.origin == "operator" ? "" : ", " + s.origin);
}

nlohmann::json SuspensionJson(const queue::Store::Suspension& s) {
  return {{"kind", s.kind},     {"name", s.name}, {"until", Utc(s.until)},
          {"reason", s.reason}, {"user", s.user}, {"origin", s.origin}};
}

std::vector<std::string> SuspensionLines(const std::vector<queue::Store::Suspension>& in_force) {
  std::vector<std::string> out;
  for (const auto& s : in_force) {
    out.push_back(fmt::format("{} {}: {}", s.kind, s.name, SuspensionText(s)));
  }
  return out;
}

nlohmann::json SuspensionsJson(const std::vector<queue::Store::Suspension>& in_force) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : in_force) out.push_back(SuspensionJson(s));
  return out;
}

}  // namespace danerelay::tools
