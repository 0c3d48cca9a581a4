// The AUTH part of the server session (RFC 4954): the SASL exchange and its outcome.
#include "relay/smtp/server_session.hpp"

namespace danerelay::relay {

bool ServerSession::OnAuth(std::string_view argument) {
  ++counts_.auth;
  if (!p_.auth_offered) {
    Error(503, "5.5.1", "Error: authentication not enabled");
  } else if (!tls_active_) {
    Error(538, "5.7.11", "Encryption required for requested authentication mechanism");
  } else if (state_ == State::kGreeting || !esmtp_) {
    Error(503, "5.5.1", "Error: send EHLO first");
  } else if (!authenticated_.empty()) {
    Error(503, "5.5.1", "Error: already authenticated");
  } else if (state_ == State::kMail) {
    Error(503, "5.5.1", "Error: MAIL transaction in progress");
  } else if (argument.empty()) {
    Error(501, "5.5.4", "Syntax: AUTH mechanism");
  } else {
    auto started = sasl_.Start(argument);
    auth_mechanism_ = sasl_.mechanism();  // the exchange forgets it when it ends
    return AuthStep(started);
  }
  return state_ != State::kClosed;
}

bool ServerSession::AuthStep(SaslExchange::Status status) {
  using S = SaslExchange::Status;
  switch (status) {
    case S::kChallenge:
      out_ += "334 " + sasl_.challenge() + "\r\n";
      state_ = State::kAuth;
      return true;
    case S::kDone:
      auth_user_ = sasl_.user();
      auth_password_ = sasl_.password();
      sasl_ = SaslExchange{};  // no copy of the password stays behind
      state_ = State::kWaitAuth;
      return false;
    case S::kCancelled:
      Error(501, "5.0.0", "Authentication aborted");
      break;
    case S::kBadBase64:
      Error(501, "5.5.2", "Error: invalid base64 data in authentication response");
      break;
    case S::kMalformed:
      Error(535, "5.7.8", "Error: authentication failed: malformed credentials");
      break;
    case S::kUnknownMechanism:
      Error(504, "5.5.4", "Error: unsupported authentication mechanism");
      break;
  }
  sasl_ = SaslExchange{};
  return state_ != State::kClosed;
}

void ServerSession::AuthDone(bool ok) {
  state_ = State::kReady;
  if (ok) {
    authenticated_ = auth_user_;
    Reply(235, "2.7.0", "Authentication successful");
  } else {
    Error(535, "5.7.8", "Error: authentication failed");
  }
  auth_user_.clear();
}

}  // namespace danerelay::relay
