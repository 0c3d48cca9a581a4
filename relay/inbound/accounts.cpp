#include "relay/inbound/accounts.hpp"

#include <crypt.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

namespace danerelay::relay {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool SupportedHash(std::string_view hash) {
  return hash.starts_with("$y$") || hash.starts_with("$6$");
}

// crypt_r's state is 32 KiB: on the heap, zeroed as libcrypt asks.
std::string Crypt(std::string_view password, const std::string& setting) {
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const std::string phrase(password);
  const char* out = crypt_r(phrase.c_str(), setting.c_str(), data.get());
  // libcrypt signals failure with NULL or a string starting with '*'.
  return out && out[0] != '*' ? std::string(out) : std::string();
}

// "$y$j9T$salt$hash" -> "$y$j9T$" (yescrypt's parameters); "$6$rounds=N$salt$hash" ->
// "$6$rounds=N$"; "$6$salt$hash" -> "$6$": the scheme and its cost, without salt and hash.
std::string_view SchemeAndCost(std::string_view hash) {
  size_t end = hash.find('$', 3);  // after "$y$" or "$6$"
  if (hash.starts_with("$y$") || hash.substr(3).starts_with("rounds=")) {
    return end == std::string_view::npos ? hash : hash.substr(0, end + 1);
  }
  return hash.substr(0, 3);
}

// FNV-1a: a stable spread of user names over the dummy settings.
std::uint64_t Fnv1a(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325u;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3u;
  return h;
}

}  // namespace

bool ValidUserName(std::string_view user) {
  if (user.empty() || user.size() > 256) return false;
  for (unsigned char c : user) {
    if (c <= ' ' || c >= 0x7f || c == ':') return false;
  }
  return true;
}

tl::expected<Accounts, std::string> Accounts::Parse(std::string_view text,
                                                    const std::string& name) {
  Accounts a;
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) {
      return tl::unexpected(fmt::format("{}:{}: expected user:hash", name, line_no));
    }
    const std::string_view user = line.substr(0, colon), hash = line.substr(colon + 1);
    if (!ValidUserName(user)) {
      return tl::unexpected(fmt::format("{}:{}: '{}' is not a user name (printable, no spaces)",
                                        name, line_no, user));
    }
    if (!SupportedHash(hash)) {
      return tl::unexpected(fmt::format(
          "{}:{}: {}: unsupported hash (yescrypt \"$y$...\" or SHA-512-crypt \"$6$...\"; make one "
          "with danerelay passwd)",
          name, line_no, user));
    }
    if (!a.hashes_.emplace(user, hash).second) {
      return tl::unexpected(fmt::format("{}:{}: {}: listed twice", name, line_no, user));
    }
  }
  // The unknown users' settings: an account's hash up to its last '$' (scheme, cost, salt).
  // Reusing an account's salt gives nothing away: the result is compared with nothing an
  // attacker sees, and an unknown user is never let in.
  std::map<std::string_view, std::string_view> by_scheme;
  for (const auto& [user, hash] : a.hashes_) by_scheme.emplace(SchemeAndCost(hash), hash);
  for (const auto& [scheme, hash] : by_scheme) {
    a.dummy_settings_.emplace_back(hash.substr(0, hash.rfind('$')));
  }
  return a;
}

std::string_view Accounts::DummySettingFor(std::string_view user) const {
  if (dummy_settings_.empty()) {
    // No accounts at all: a yescrypt one of libcrypt's default cost, as `danerelay passwd`
    // makes. Made only here: made on the first call, it cost that call a second hash.
    static const std::string kDefault = *HashPassword("no such user");
    return kDefault;
  }
  return dummy_settings_[Fnv1a(user) % dummy_settings_.size()];
}

tl::expected<Accounts, std::string> Accounts::Load(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return tl::unexpected(fmt::format("{}: cannot read: {}", file.string(), std::strerror(errno)));
  }
  std::stringstream text;
  text << in.rdbuf();
  return Parse(text.str(), file.string());
}

bool Accounts::Verify(std::string_view user, std::string_view password) const {
  // An unknown user costs a hash of the same scheme and cost, so timing does not tell who
  // exists.
  const auto it = hashes_.find(user);
  const std::string hash(it == hashes_.end() ? DummySettingFor(user) : it->second);
  const std::string computed = Crypt(password, hash);
  const bool same = !computed.empty() && computed.size() == hash.size() &&
                    CRYPTO_memcmp(computed.data(), hash.data(), hash.size()) == 0;
  return same && it != hashes_.end();
}

tl::expected<std::string, std::string> HashPassword(std::string_view password) {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  // Count 0: libcrypt's default cost; no random bytes given: libcrypt draws its own.
  if (!crypt_gensalt_rn("$y$", 0, nullptr, 0, setting, sizeof setting)) {
    return tl::unexpected(std::string("crypt_gensalt: ") + std::strerror(errno));
  }
  std::string hash = Crypt(password, setting);
  if (hash.empty()) return tl::unexpected(std::string("crypt: ") + std::strerror(errno));
  return hash;
}

tl::expected<void, std::string> SetPassword(const std::filesystem::path& file,
                                            std::string_view user, std::string_view hash) {
  std::string kept;
  struct stat old {};
  const bool existed = ::stat(file.c_str(), &old) == 0;
  if (!existed && errno != ENOENT) {
    return tl::unexpected(fmt::format("{}: {}", file.string(), std::strerror(errno)));
  }
  if (std::ifstream in(file, std::ios::binary); in) {
    std::string line;
    while (std::getline(in, line)) {
      const auto colon = line.find(':');
      if (colon != std::string::npos && std::string_view(line).substr(0, colon) == user) continue;
      kept += line + "\n";
    }
  } else if (existed) {
    return tl::unexpected(fmt::format("{}: cannot read: {}", file.string(), std::strerror(errno)));
  }
  kept += fmt::format("{}:{}\n", user, hash);
  // A fresh, unpredictable name in the same directory (rename(2) needs the same file system),
  // created exclusively: a link planted there (the directory may be shared with the daemon's
  // group) makes the open fail instead of being followed (O_EXCL and O_NOFOLLOW).
  const std::filesystem::path dir = file.has_parent_path() ? file.parent_path() : ".";
  std::string tmp = (dir / ("." + file.filename().string() + ".XXXXXX")).string();
  const int fd = ::mkostemp(tmp.data(), O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return tl::unexpected(fmt::format("{}: {}", tmp, std::strerror(errno)));
  // The replacement keeps the owner, group and mode of the file it replaces (root:danerelay
  // 0640 is how the daemon's account reads it): becoming root's 0600 would lock the daemon out.
  // Without the power to give it that owner, fail rather than change who may read it.
  bool ok = true;
  std::string step;
  if (existed && (old.st_uid != ::geteuid() || old.st_gid != ::getegid())) {
    ok = ::fchown(fd, old.st_uid, old.st_gid) == 0;
    step = ok ? "" : fmt::format("cannot keep its owner {}:{}", old.st_uid, old.st_gid);
  }
  if (ok) {
    ok = ::fchmod(fd, existed ? (old.st_mode & 07777) : 0600) == 0;
    if (!ok) step = "cannot keep its mode";
  }
  for (size_t done = 0; ok && done < kept.size();) {
    const ssize_t n = ::write(fd, kept.data() + done, kept.size() - done);
    ok = n > 0;
    done += ok ? static_cast<size_t>(n) : 0;
  }
  ok = ok && ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), file.c_str()) != 0) {
    const std::string why = std::strerror(ok ? errno : saved);
    ::unlink(tmp.c_str());
    return tl::unexpected(
        fmt::format("{}: {}{}", file.string(), step.empty() ? "" : step + ": ", why));
  }
  // The rename itself made durable, as the file's contents were.
  if (const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); d >= 0) {
    ::fsync(d);
    ::close(d);
  }
  return {};
}

bool MaySendAs(const std::map<std::string, std::vector<std::string>>& senders,
               std::string_view user, std::string_view sender) {
  if (sender.empty()) return true;
  const auto it = senders.find(std::string(user));
  if (it == senders.end()) return true;
  const std::string s = Lower(sender);
  const auto at = s.rfind('@');
  for (const auto& entry : it->second) {
    const std::string e = Lower(entry);
    if (e == s) return true;
    if (e.front() == '@' && at != std::string::npos && s.substr(at) == e) return true;
  }
  return false;
}

}  // namespace danerelay::relay
