#include "tools/cli/dkim.hpp"

#include <fcntl.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <pwd.h>
#include <unistd.h>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <ostream>
#include <vector>

#include "config/reader.hpp"
#include "dns/idn.hpp"
#include "dns/resolver.hpp"
#include "relay/dkim/key.hpp"
#include "relay/dkim/record.hpp"

namespace danerelay::tools {
namespace {

std::string DefaultSelector() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  return fmt::format("dr{:%Y%m}", tm);
}

std::filesystem::path DefaultKeyFile(const config::Config& cfg, const DkimKeygenArgs& a) {
  std::error_code ec;
  const std::filesystem::path dir = std::filesystem::is_regular_file(cfg.source, ec)
                                        ? std::filesystem::path(cfg.source).parent_path()
                                        : config::DefaultConfigFile().parent_path();
  return dir / "dkim" / fmt::format("{}.{}.pem", a.domain, a.selector);
}

// Creates `file` with mode 0600 (never replacing one), owned by [server] user when run as
// root; "" or why not.
std::string WriteKeyFile(const std::filesystem::path& file, const std::string& pem,
                         const std::string& user) {
  std::error_code ec;
  if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path(), ec);
  if (ec) return fmt::format("cannot create {}: {}", file.parent_path().string(), ec.message());
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return fmt::format("cannot create {}: {}", file.string(), std::strerror(errno));
  const bool written =
      ::write(fd, pem.data(), pem.size()) == static_cast<ssize_t>(pem.size()) && ::fsync(fd) == 0;
  bool owned = true;
  if (written && ::geteuid() == 0 && !user.empty()) {
    const passwd* pw = ::getpwnam(user.c_str());
    owned = pw && ::fchown(fd, pw->pw_uid, pw->pw_gid) == 0;
  }
  const bool closed = ::close(fd) == 0;
  if (written && owned && closed) return "";
  std::filesystem::remove(file, ec);
  return fmt::format("cannot write {}{}", file.string(),
                     owned ? "" : fmt::format(" owned by {}", user));
}

}  // namespace

int RunDkimKeygen(const config::Config& cfg, DkimKeygenArgs a, std::ostream& out,
                  std::ostream& err) {
  if (a.selector.empty()) a.selector = DefaultSelector();
  // Both end up in a DNS name and in the default file name: host-name labels only (no '/').
  auto domain = dns::ToAsciiDomain(a.domain);
  if (!domain || !config::ValidHostname(*domain)) {
    err << "danerelay dkim keygen: '" << a.domain << "' is not a domain name\n";
    return 64;
  }
  a.domain = *domain;
  if (!config::ValidHostname(a.selector)) {
    err << "danerelay dkim keygen: '" << a.selector << "' is not a selector (RFC 6376 §3.1)\n";
    return 64;
  }
  const std::filesystem::path file = std::filesystem::absolute(
      a.key_file.empty() ? DefaultKeyFile(cfg, a) : std::filesystem::path(a.key_file));
  auto pem = relay::dkim::GenerateKeyPem(a.algorithm);
  if (!pem) {
    err << "danerelay dkim keygen: " << pem.error() << "\n";
    return 64;
  }
  auto key = relay::dkim::ParseKey(*pem);
  if (!key) {
    err << "danerelay dkim keygen: " << key.error() << "\n";
    return 1;
  }
  if (const std::string why = WriteKeyFile(file, *pem, cfg.server.user); !why.empty()) {
    err << "danerelay dkim keygen: " << why << "\n";
    return 1;
  }
  out << fmt::format("wrote {} ({}, mode 0600)\n\n", file.string(),
                     relay::dkim::AlgorithmName(key->algorithm));
  out << "Publish this record (in a DNSSEC-signed zone if you can):\n\n"
      << relay::dkim::ZoneLine(a.selector, a.domain, relay::dkim::TxtRecord(*key)) << "\n\n";
  out << fmt::format(
      "and add to the configuration, then reload danerelayd:\n\n[[dkim.key]]\ndomain = \"{}\"\n"
      "selector = \"{}\"\nkey_file = \"{}\"\n",
      a.domain, a.selector, file.string());
  return 0;
}

namespace {

struct Checked {
  const relay::DkimKeyOptions* key;
  dns::TxtAnswer answer;
};

// "matches ...", or why not; *ok false when it does not match.
std::string Judge(const relay::DkimKeyOptions& k, const dns::TxtAnswer& a, bool* ok) {
  *ok = false;
  auto key = relay::dkim::LoadKey(k.key_file);
  if (!key) return "the key does not load: " + key.error();
  if (a.rcode == dns::Rcode::kFailed || a.dnssec == dns::DnssecState::kBogus) {
    return fmt::format("lookup failed ({}{})", dns::ToString(a.dnssec),
                       a.why.empty() ? "" : ": " + a.why);
  }
  if (a.rcode == dns::Rcode::kNxDomain || a.rcode == dns::Rcode::kNoData) return "no record";
  if (const std::string problem = relay::dkim::KeyRecordProblem(*key, a.records);
      !problem.empty()) {
    return "DIFFERS: " + problem;
  }
  *ok = true;
  return fmt::format("matches {} ({})", k.key_file.string(),
                     relay::dkim::AlgorithmName(key->algorithm));
}

asio::awaitable<void> LookUp(dns::Resolver& resolver, std::vector<Checked>& checks) {
  for (auto& c : checks) {
    c.answer =
        co_await resolver.LookupTxt(relay::dkim::KeyRecordName(c.key->selector, c.key->domain));
  }
}

constexpr std::chrono::seconds kCheckLimit(60);

}  // namespace

int RunDkimCheck(const config::Config& cfg, const std::string& name, const std::string& selector,
                 std::ostream& out) {
  const std::string domain = dns::ToAsciiDomain(name).value_or(name);  // keys are lower case
  std::vector<Checked> checks;
  for (const auto& k : cfg.server.dkim.keys) {
    if (k.domain == domain && (selector.empty() || k.selector == selector)) {
      checks.push_back({&k, {}});
    }
  }
  if (checks.empty()) {
    out << fmt::format("dkim check: no [[dkim.key]] for {}{} in the configuration\n", domain,
                       selector.empty() ? "" : " with selector " + selector);
    return 3;
  }
  asio::io_context io(1);
  auto resolver = dns::Resolver::Create(io, cfg.dns);
  if (!resolver) {
    out << "dkim check: dns: " << resolver.error() << "\n";
    return 3;
  }
  // As dane-check: the resolver's descriptor watch keeps the loop alive, so the end stops it;
  // the whole run is bounded.
  asio::steady_timer limit(io, kCheckLimit);
  bool done = false;
  limit.async_wait([&](std::error_code ec) {
    if (!ec) io.stop();
  });
  asio::co_spawn(io, LookUp(**resolver, checks), [&](std::exception_ptr) {
    done = true;
    io.stop();
  });
  io.run();
  if (!done) {
    out << fmt::format("dkim check: gave up after {}s\n", kCheckLimit.count());
    return 1;
  }
  int status = 0;
  for (const auto& c : checks) {
    bool ok = false;
    const std::string verdict = Judge(*c.key, c.answer, &ok);
    out << fmt::format("{}: {}; DNSSEC: {}\n",
                       relay::dkim::KeyRecordName(c.key->selector, c.key->domain), verdict,
                       dns::ToString(c.answer.dnssec));
    if (!ok) status = 1;
  }
  return status;
}

}  // namespace danerelay::tools
