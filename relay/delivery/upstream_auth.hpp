#pragma once
// SMTP AUTH to an upstream relay (RFC 4954), the parts without I/O: whether credentials may be
// sent over this connection, which mechanism, and what to send. The exchange itself is in
// smtp_client.cpp.
//
// Credentials go only over TLS that authenticated the server: verified by DANE or by the pins
// of "fingerprint", or trusted under WebPKI for the names of "verify". Anything less (may,
// encrypt, dane without TLSA) only with the route's allow_unverified_auth.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "tls/client.hpp"

namespace danerelay::relay {

bool MaySendCredentials(const std::optional<tls::Verdict>& verdict, bool webpki_required,
                        bool allow_unverified);

enum class AuthMechanism { kPlain, kLogin };
// PLAIN when offered, else LOGIN; nullopt when the server offers neither.
std::optional<AuthMechanism> ChooseMechanism(const std::vector<std::string>& offered);

// RFC 4616: base64 of "\0user\0password" (no authorization identity).
std::string PlainInitialResponse(const std::string& user, const std::string& password);

// The password: the file's first line, without its line end. Read at each connection, so a
// rotated password needs no reload.
tl::expected<std::string, std::string> ReadPassword(const std::filesystem::path& file);

}  // namespace danerelay::relay
