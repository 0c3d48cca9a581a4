#pragma once
// What the daemon does with the powers it was started with: it resolves [server] user, makes the
// queue directory and files that user's alone (0700 and 0600), binds its listeners, then gives
// root up for good (setgroups, setgid, setuid) before it reads a byte from the network.
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <tl/expected.hpp>

#include "relay/options.hpp"

namespace danerelay::relay {

struct Identity {
  std::string user;
  uid_t uid = 0;
  gid_t gid = 0;
};

// The account from [server] user/group; nullopt when none is configured. Fails when the
// process can neither become that account (not root) nor already is it.
tl::expected<std::optional<Identity>, std::string> ResolveIdentity(const ServerOptions& options);

// Creates the queue directory when missing and tightens it and the files in it that the daemon
// owns (queue.db and its -wal/-shm, the lock file) to 0700/0600, given to `owner` when running
// as root. Logs what it changed.
tl::expected<void, std::string> SecureQueueDirectory(const std::filesystem::path& directory,
                                                     const std::optional<Identity>& owner);

// setgroups + setgid + setuid to `who`, then checks that root cannot be regained.
tl::expected<void, std::string> DropPrivileges(const Identity& who);

// Raises the soft RLIMIT_NOFILE toward `wanted` (up to the hard limit). Returns the limit in
// force afterwards.
std::uint64_t RaiseFileLimit(std::uint64_t wanted);

}  // namespace danerelay::relay
