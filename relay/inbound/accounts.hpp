#pragma once
// The SMTP AUTH accounts: the users file ([auth] users_file), one "user:hash" per line, hashes
// made by libcrypt (yescrypt "$y$" by default, SHA-512-crypt "$6$" accepted); blank lines and
// "#" comments are skipped. No Asio: the command line (`danerelay passwd`) uses it too.
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

namespace danerelay::relay {

class Accounts {
 public:
  // Errors name the file and line ("users:3: ...").
  static tl::expected<Accounts, std::string> Load(const std::filesystem::path& file);
  static tl::expected<Accounts, std::string> Parse(std::string_view text, const std::string& name);

  // Whether `password` is `user`'s. Deliberately slow (the hash's cost): never on the protocol
  // thread. An unknown user costs the same as a wrong password.
  bool Verify(std::string_view user, std::string_view password) const;
  size_t size() const { return hashes_.size(); }
  // What an unknown `user`'s password is hashed with: the setting (scheme, cost and salt) of an
  // account's hash, one of each scheme and cost in the file, picked by the user name (the same
  // name always gets the same), so that timing tells neither whether a user exists nor, where
  // accounts use several schemes, which one a name would have.
  std::string_view DummySettingFor(std::string_view user) const;

 private:
  std::map<std::string, std::string, std::less<>> hashes_;
  std::vector<std::string> dummy_settings_;  // one per scheme and cost, in their order
};

// A new yescrypt hash of `password`, with a fresh salt from libcrypt.
tl::expected<std::string, std::string> HashPassword(std::string_view password);

// Adds or replaces `user` in the users file, atomically (a new file, made under a random name
// without following links, synced and renamed over the old). The new file keeps the owner,
// group and mode of the old one (fails when it cannot); a missing file is created with 0600.
tl::expected<void, std::string> SetPassword(const std::filesystem::path& file,
                                            std::string_view user, std::string_view hash);

// Whether a valid account name: printable ASCII without ':' or spaces.
bool ValidUserName(std::string_view user);

// [auth] senders: whether `user` may use `sender` in MAIL FROM. Users without an entry may use
// any; the null sender is always allowed; entries are addresses (case-insensitive) or
// "@domain" (any address in it).
bool MaySendAs(const std::map<std::string, std::vector<std::string>>& senders,
               std::string_view user, std::string_view sender);

}  // namespace danerelay::relay
