#include "tools/cli/queue_suspend.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "queue/message.hpp"
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

}  // namespace

int RunSuspend(const config::Config& config, const SuspendRequest& req, std::ostream& out,
               std::ostream& err) {
  if (!PlausibleDomain(req.domain)) {
    err << "danerelay: queue suspend: --domain " << req.domain << ": not a domain\n";
    return kExitUsage;
  }
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
  s.name = req.domain;
  s.created = queue::Clock::now();
  s.until = s.created + *length;
  s.reason = queue::Printable(req.reason, 200);
  s.user = OperatorName();
  if (auto r = (*store)->Suspend(s); !r) {
    err << "danerelay: queue suspend: " << r.error().message << "\n";
    return 2;
  }
  out << fmt::format("domain {} suspended until {}\n", req.domain, Utc(s.until));
  return 0;
}

int RunResume(const config::Config& config, const std::string& domain, std::ostream& out,
              std::ostream& err) {
  auto store = queue::Store::Open(config.queue, queue::OpenMode::kReadWriteExisting);
  if (!store) {
    err << "danerelay: " << store.error().message << "\n";
    return 2;
  }
  auto r = (*store)->Resume("domain", domain, queue::Clock::now());
  if (!r) {
    err << "danerelay: queue resume: " << r.error().message << "\n";
    return 2;
  }
  if (!*r) {
    err << "danerelay: queue resume: domain " << domain << " is not suspended\n";
    return 1;
  }
  out << fmt::format("domain {} resumed\n", domain);
  return 0;
}

std::vector<std::string> SuspensionLines(const std::vector<queue::Store::Suspension>& in_force) {
  std::vector<std::string> out;
  for (const auto& s : in_force) {
    out.push_back(fmt::format("{} {}: suspended until {}: {} (by {}{})", s.kind, s.name,
                              Utc(s.until), s.reason.empty() ? "no reason given" : s.reason, s.user,
                              s.origin == "operator" ? "" : ", " + s.origin));
  }
  return out;
}

nlohmann::json SuspensionsJson(const std::vector<queue::Store::Suspension>& in_force) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : in_force) {
    out.push_back({{"kind", s.kind},
                   {"name", s.name},
                   {"until", Utc(s.until)},
                   {"reason", s.reason},
                   {"user", s.user},
                   {"origin", s.origin}});
  }
  return out;
}

}  // namespace danerelay::tools
