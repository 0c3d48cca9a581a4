// The mail transaction of the server session (RFC 5321 §3.3): MAIL, RCPT, DATA, and the end of
// the data, which hands the message to the queue.
#include "relay/smtp/server_session.hpp"

#include <fmt/format.h>

#include "dns/idn.hpp"
#include "relay/smtp/received.hpp"
#include "relay/smtp/smtp_command.hpp"

namespace danerelay::relay {

void ServerSession::OnMail(std::string_view argument) {
  ++counts_.mail;
  if (state_ == State::kGreeting) {
    Error(503, "5.5.1", "Error: send HELO/EHLO first");
    return;
  }
  if (state_ == State::kMail) {
    Error(503, "5.5.1", "Error: nested MAIL command");
    return;
  }
  if (p_.require_tls && !tls_active_) {
    Error(530, "5.7.0", "Must issue a STARTTLS command first");
    return;
  }
  auto args = ParseMail(argument);
  if (!args) {
    Error(args.error().code, args.error().enhanced, args.error().text);
    return;
  }
  command_sender_ = args->sender;
  if (!authenticated_.empty() && p_.may_send_as && !p_.may_send_as(authenticated_, args->sender)) {
    Reply(553, "5.7.1",
          fmt::format("<{}>: Sender address rejected: not owned by user {}", args->sender,
                      authenticated_));
    return;
  }
  if (args->requiretls && !tls_active_) {
    Reply(530, "5.7.10", "REQUIRETLS needs a TLS session (STARTTLS first)");
    return;
  }
  if (args->size && *args->size > p_.limits.max_message_size) {
    Reply(552, "5.3.4", "Message size exceeds fixed limit");
    return;
  }
  ResetTransaction();
  message_.sender = std::move(args->sender);
  message_.dsn_ret = args->ret;
  message_.dsn_envid = std::move(args->envid);
  message_.requiretls = args->requiretls;
  if (args->auth) {
    // RFC 4954 §5: the mailbox is passed on only when this relay trusts the client to assert
    // it (a trusted network, or a user who may send as it); otherwise as if AUTH=<>.
    const bool vouched =
        p_.trusted || (!authenticated_.empty() && (!p_.may_send_as || args->auth->empty() ||
                                                   p_.may_send_as(authenticated_, *args->auth)));
    message_.mail_auth = vouched ? std::move(*args->auth) : std::string();
  }
  body_8bitmime_ = args->body_8bitmime;
  smtputf8_ = args->smtputf8;
  // A client that can never relay (untrusted and not authenticated) is refused at RCPT:
  // its sender is not worth DNS lookups or verification probes made on its behalf.
  const bool may_relay = p_.trusted || !authenticated_.empty();
  if (p_.check_sender && may_relay && !message_.sender.empty()) {
    state_ = State::kWaitSender;  // the null sender is exempt (bounces must get through)
    return;
  }
  if (!QuotaAllows(false, message_.sender)) {
    ResetTransaction();
    return;
  }
  state_ = State::kMail;
  Reply(250, "2.1.0", "Ok");
}

// RFC 3463 §3.8 X.7.1: not permitted now; 450 so that the client keeps the mail and retries
// (never accepted and dropped).
// Only for clients that may relay: an untrusted, unauthenticated one is refused at RCPT anyway,
// and must not use up the quota of the sender it claims to be.
bool ServerSession::QuotaAllows(bool recipient, std::string_view address) {
  if (!p_.quota || !(p_.trusted || !authenticated_.empty())) return true;
  const auto refused = p_.quota(authenticated_, message_.sender, recipient);
  if (!refused) return true;
  Reply(450, "4.7.1", fmt::format("<{}>: {}", address, *refused));
  return false;
}

void ServerSession::OnRcpt(std::string_view argument) {
  ++counts_.rcpt;
  if (state_ != State::kMail) {
    Error(503, "5.5.1", "Error: need MAIL command");
    return;
  }
  auto args = ParseRcpt(argument, smtputf8_);
  if (!args) {
    Error(args.error().code, args.error().enhanced, args.error().text);
    return;
  }
  command_recipient_ = args->recipient;
  if (!p_.trusted && authenticated_.empty()) {
    // Never an open relay: clients neither trusted nor authenticated may name no recipient.
    Error(554, "5.7.1", "<" + args->recipient + ">: Relay access denied");
    return;
  }
  if (message_.recipients.size() >= p_.limits.max_recipients) {
    Reply(452, "4.5.3", "Error: too many recipients");
    return;
  }
  if (!QuotaAllows(true, args->recipient)) return;
  message_.recipients.push_back({std::move(args->recipient), args->notify, std::move(args->orcpt)});
  --commands_without_mail_;  // bounded by max_recipients instead
  Reply(250, "2.1.5", "Ok");
}

void ServerSession::OnData(std::string_view argument) {
  ++counts_.data;
  if (state_ != State::kMail) {
    Error(503, "5.5.1", "Error: need MAIL command");
    return;
  }
  if (message_.recipients.empty()) {
    Error(554, "5.5.1", "Error: no valid recipients");
    return;
  }
  if (!argument.empty()) {
    Error(501, "5.5.4", "Syntax: DATA");
    return;
  }
  state_ = State::kData;
  data_due_set_ = false;
  data_fed_ = 0;
  data_prev_line_crlf_ = true;
  data_bad_newline_ = data_too_long_line_ = data_too_big_ = data_partial_line_ = false;
  data_no_room_ = false;
  DropData();
  // The queue ID and the Received header are made now, so the data can be appended to the
  // header and handed to the queue without a copy.
  pending_id_ = p_.next_queue_id();
  data_ = ReceivedHeader(pending_id_);
  data_header_ = data_.size();
  Reply(354, "", "End data with <CR><LF>.<CR><LF>");
}

void ServerSession::SenderChecked(const std::optional<Refusal>& refusal) {
  if (refusal) {
    state_ = State::kReady;
    Reply(refusal->code, refusal->enhanced, refusal->text);
    ResetTransaction();
  } else if (!QuotaAllows(false, message_.sender)) {
    state_ = State::kReady;
    ResetTransaction();
  } else {
    state_ = State::kMail;
    Reply(250, "2.1.0", "Ok");
  }
}

std::optional<ServerSession::Action> ServerSession::FinishData() {
  current_verb_ = "END-OF-MESSAGE";
  state_ = State::kReady;
  if (data_bad_newline_) {
    Error(550, "5.5.2", "Error: message contains bare <CR> or <LF>; lines must end with <CR><LF>");
  } else if (data_too_big_) {
    Reply(552, "5.3.4", "Error: message file too big");
  } else if (data_too_long_line_) {
    Reply(550, "5.6.0", "Error: message has a line longer than 998 characters (RFC 5322 2.1.1)");
  } else if (data_no_room_) {
    Reply(452, "4.3.1", "Error: insufficient system storage, try again later");
  } else {
    message_.id = pending_id_;
    message_.arrival = p_.now();
    message_.auth_user = authenticated_;
    message_.client_address = p_.client_address;
    message_.client_helo = helo_;
    message_.protocol = Protocol();
    message_.body_8bitmime = body_8bitmime_;
    message_.smtputf8 = smtputf8_;
    // The data already begins with the Received header: moved, not copied, so a message is
    // held once in memory. Its bytes stay taken from the budget until EnqueueDone.
    message_.content = std::move(data_);
    data_.clear();
    state_ = State::kWaitEnqueue;
    return Action::kEnqueue;
  }
  ResetTransaction();
  if (state_ == State::kClosed) return Action::kClose;
  return std::nullopt;  // the session goes on with the next pipelined command
}

void ServerSession::EnqueueRefused(std::string_view text) {
  Reply(451, "4.3.0", text);
  ResetTransaction();
  state_ = State::kReady;
}

std::string ServerSession::ReceivedHeader(const std::string& id) const {
  ReceivedInfo info;
  info.helo = helo_;
  info.client_address = p_.client_address;
  info.hostname = p_.hostname;
  info.protocol = Protocol();
  info.queue_id = id;
  info.tls = tls_description_;
  if (message_.recipients.size() == 1) {
    // The domain as an A-label, so that an SMTPUTF8 message whose addresses can go on in ASCII
    // does not need SMTPUTF8 for this header (RFC 6531 §3.2, §4.3).
    info.for_recipient = dns::ToAsciiAddressIfPossible(message_.recipients[0].address);
  }
  info.time = p_.now();
  info.hide_client = authenticated_.empty() ? p_.trusted && p_.hide_trusted : p_.hide_auth;
  return FormatReceived(info);
}

void ServerSession::EnqueueDone(bool stored, std::string_view error) {
  if (stored) {
    commands_without_mail_ = 0;
    Reply(250, "2.0.0", "Ok: queued as " + pending_id_);
  } else {
    Reply(451, "4.3.0",
          fmt::format("Error: queue file write error{}{}", error.empty() ? "" : ": ", error));
  }
  ResetTransaction();
  state_ = State::kReady;
}

}  // namespace danerelay::relay
