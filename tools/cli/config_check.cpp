#include "tools/cli/config_check.hpp"

#include <fmt/format.h>
#include <asio/io_context.hpp>

#include <vector>

#include "config/config.hpp"
#include "dns/resolver.hpp"
#include "relay/inbound/accounts.hpp"
#include "tls/client.hpp"
#include "tls/server_context.hpp"
#include "tools/cli/file_access.hpp"

namespace danerelay::tools {
namespace {

constexpr int kExitConfig = 78;

// What the daemon loads at start (and on reload), loaded the same way: certificates with their
// keys, the WebPKI trust store, the trust anchor (through libunbound), the AUTH accounts.
std::vector<std::string> LoadProblems(const config::Config& cfg) {
  std::vector<std::string> problems;
  for (const auto& lo : cfg.server.listeners) {
    if (!lo.starttls && !lo.implicit_tls) continue;
    if (auto ctx = tls::MakeServerContext(lo.tls); !ctx) {
      problems.push_back(fmt::format("listener {}:{}: {}", lo.address, lo.port, ctx.error()));
    }
  }
  if (!cfg.delivery.mta_sts.ca_file.empty()) {
    if (auto ctx = tls::MakeClientContext(cfg.delivery.mta_sts.ca_file); !ctx) {
      problems.push_back("[tls] ca_file: " + ctx.error());
    }
  }
  {
    asio::io_context io;
    if (auto r = dns::Resolver::Create(io, cfg.dns); !r) problems.push_back("[dns] " + r.error());
  }
  if (!cfg.server.auth.users_file.empty()) {
    if (auto a = relay::Accounts::Load(cfg.server.auth.users_file); !a) {
      problems.push_back("[auth] users_file " + a.error());
    }
  }
  return problems;
}

}  // namespace

int RunConfigCheck(const std::string& path, std::ostream& out, std::ostream& err) {
  auto cfg = config::LoadFileOrDefaults(path);
  if (!cfg) {
    // Every problem in the file, not only the first: one edit-and-check round for all.
    if (cfg.error().all.empty()) err << "danerelay: " << cfg.error().message << "\n";
    for (const auto& p : cfg.error().all) err << "danerelay: " << p << "\n";
    return kExitConfig;
  }
  std::vector<std::string> problems = LoadProblems(*cfg);
  // Root reads them all; the daemon reads them again on reload as [server] user.
  const auto access = CheckReadableByAccount(*cfg);
  problems.insert(problems.end(), access.problems.begin(), access.problems.end());
  if (!access.note.empty()) err << "danerelay: " << cfg->source << ": " << access.note << "\n";
  for (const auto& p : problems) err << "danerelay: " << cfg->source << ": " << p << "\n";
  if (!problems.empty()) return kExitConfig;
  for (const auto* table : {&cfg->delivery.routes.by_domain, &cfg->delivery.routes.by_sender}) {
    for (const auto& [key, route] : *table) {
      if (route.auth && route.auth->allow_unverified) {
        err << "danerelay: " << cfg->source << ": warning: route \"" << key
            << "\" sends its credentials over TLS that is not verified "
               "(allow_unverified_auth = true)\n";
      }
    }
  }
  out << cfg->source << ": ok (" << cfg->server.listeners.size() << " listener(s), "
      << cfg->delivery.mandatory_domains.size() << " mandatory DANE domain(s), "
      << cfg->delivery.routes.by_domain.size() + cfg->delivery.routes.by_sender.size()
      << " route(s))\n";
  return 0;
}

}  // namespace danerelay::tools
