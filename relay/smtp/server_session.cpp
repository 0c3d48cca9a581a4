#include "relay/smtp/server_session.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "dns/idn.hpp"
#include "relay/smtp/received.hpp"
#include "relay/smtp/smtp_command.hpp"

namespace danerelay::relay {
namespace {

// RFC 5321 §4.5.3.1.4 sets 512 octets for a command line and lets extensions raise it; DSN's
// ORCPT alone may add 500 (RFC 3461 §4.2). 2048 is what Postfix's line_length_limit allows.
constexpr size_t kMaxCommandLine = 2048;
// RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including CRLF.
constexpr size_t kMaxTextLine = 1000;
// RFC 4954 §4: an AUTH command with its initial response, and each response line, may be up
// to 12288 octets.
constexpr size_t kMaxAuthLine = 12288;

// Whether `line` (maybe incomplete) is an AUTH command, which may be longer than others.
bool AuthCommand(std::string_view line) {
  constexpr std::string_view kAuth = "AUTH ";
  if (line.size() < kAuth.size()) return false;
  for (size_t i = 0; i < kAuth.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(line[i])) != kAuth[i]) return false;
  }
  return true;
}

// A line (with its LF) is clean when it ends in CRLF and holds no other CR: a bare LF or bare CR
// is refused everywhere, so that no peer can disagree with us about where a line or the data ends
// (SMTP smuggling; RFC 5321 §2.3.8).
bool CleanCrlf(std::string_view line) {
  if (line.size() < 2 || line[line.size() - 2] != '\r') return false;
  return line.find('\r') == line.size() - 2 && line.find('\n') == line.size() - 1;
}

}  // namespace

ServerSession::ServerSession(SessionParams params) : p_(std::move(params)) {}

void ServerSession::Start() { Reply(220, "", p_.hostname + " ESMTP danerelay"); }

void ServerSession::Feed(std::string_view bytes) {
  if (state_ == State::kClosed) return;
  in_.append(bytes);
  if (state_ == State::kData) data_fed_ += bytes.size();
}

std::string ServerSession::TakeOutput() { return std::exchange(out_, {}); }

std::vector<std::string> ServerSession::TakeEvents() { return std::exchange(events_, {}); }

queue::NewMessage ServerSession::TakeMessage() { return std::move(message_); }

void ServerSession::Reply(int code, std::string_view enhanced, std::string_view text) {
  // A failed AUTH is logged as its SASL warning (the line fail2ban reads), not as a reject.
  if (code >= 400 && current_verb_ != "AUTH") {
    // Postfix's smtpd form: the queue ID once the data has one, the sender of the MAIL being
    // answered or of the transaction, the recipient of the RCPT being answered.
    const bool queued = current_verb_ == "END-OF-MESSAGE" && !pending_id_.empty();
    events_.push_back(fmt::format(
        "{}: reject: {} from unknown[{}]: {} {}{}{}; from=<{}>{} proto={} helo=<{}>",
        queued ? pending_id_ : "NOQUEUE", current_verb_, p_.client_address, code, enhanced,
        enhanced.empty() ? "" : " ", text, command_sender_ ? *command_sender_ : message_.sender,
        command_recipient_.empty() ? "" : " to=<" + command_recipient_ + ">", Protocol(), helo_));
  }
  if (enhanced.empty()) {
    out_ += fmt::format("{} {}\r\n", code, text);
  } else {
    out_ += fmt::format("{} {} {}\r\n", code, enhanced, text);
  }
}

void ServerSession::Error(int code, std::string_view enhanced, std::string_view text) {
  Reply(code, enhanced, text);
  if (++errors_ >= p_.limits.max_errors) {
    Reply(421, "4.7.0", p_.hostname + " Error: too many errors");
    state_ = State::kClosed;
  }
}

void ServerSession::Abort(std::string_view reason, std::string_view enhanced) {
  if (state_ == State::kClosed) return;
  // Not through Reply: this 421 answers no command (the client waits, or a message it sent is
  // already queued), so it is no reject line; log readers would count it as a refused message.
  out_ += fmt::format("421 {} {} Error: {}\r\n", enhanced, p_.hostname, reason);
  state_ = State::kClosed;
}

ServerSession::~ServerSession() { DropData(); }

void ServerSession::DropData() {
  data_.clear();
  data_.shrink_to_fit();
  data_header_ = 0;
  if (p_.budget) p_.budget->Give(held_);
  held_ = 0;
}

void ServerSession::ResetTransaction() {
  message_ = queue::NewMessage{};
  body_8bitmime_ = false;
  smtputf8_ = false;
  DropData();
}

std::string ServerSession::Protocol() const {
  // RFC 3848: ESMTPS when TLS is in use, ESMTPSA when the client also authenticated.
  if (!esmtp_) return tls_active_ ? "SMTPS" : "SMTP";
  if (!authenticated_.empty()) return tls_active_ ? "ESMTPSA" : "ESMTPA";
  return tls_active_ ? "ESMTPS" : "ESMTP";
}

ServerSession::SteadyTime ServerSession::ReadDeadline(SteadyTime now) {
  SteadyTime due;
  if (state_ == State::kData) {
    const SteadyTime cap = now + p_.limits.data_timeout;
    if (!data_due_set_ || p_.limits.min_data_rate == 0) {
      data_due_ = cap;
    } else {
      data_due_ += std::chrono::microseconds(data_fed_ * 1'000'000 / p_.limits.min_data_rate);
      data_due_ = std::min(data_due_, cap);
    }
    data_due_set_ = true;
    due = data_due_;
  } else {
    // A new line begins when nothing of one is buffered (a line over the limit that is being
    // dropped as it comes is still the same line).
    if (!deadlines_started_ || (in_.empty() && !discarding_long_line_)) {
      line_due_ = now + p_.limits.command_timeout;
    }
    due = line_due_;
  }
  data_fed_ = 0;
  if (!deadlines_started_) {
    deadlines_started_ = true;
    connected_ = now;
  }
  if (!p_.trusted && authenticated_.empty()) {
    due = std::min(due, connected_ + p_.limits.untrusted_auth_timeout);
  }
  return due;
}

void ServerSession::TimedOut(SteadyTime now) {
  if (!p_.trusted && authenticated_.empty() &&
      now >= connected_ + p_.limits.untrusted_auth_timeout) {
    Abort("not authenticated in time", "4.7.0");
  } else {
    Abort("timeout exceeded");
  }
}

ServerSession::Action ServerSession::Next() {
  size_t pos = 0;
  std::optional<Action> action;
  while (!action) {
    if (state_ == State::kClosed) {
      action = Action::kClose;
      break;
    }
    if (state_ == State::kWaitEnqueue || state_ == State::kWaitAuth ||
        state_ == State::kWaitSender) {
      throw std::logic_error("ServerSession::Next called while waiting for the I/O layer");
    }
    // Data lines end at every LF (a bare one marks the message as bad); commands end only at
    // CRLF, so that "MAIL FROM:<a>\nRCPT TO:<b>\r\n" is one bad line with one reply, not two
    // commands.
    size_t lf = std::string::npos;
    if (state_ == State::kData) {
      lf = in_.find('\n', pos);
    } else if (const size_t crlf = in_.find("\r\n", pos); crlf != std::string::npos) {
      lf = crlf + 1;
    }
    if (lf == std::string::npos) {
      // No complete line. Bound what we buffer: a line over the limit is dropped as it comes.
      const size_t partial = in_.size() - pos;
      if (state_ == State::kData && partial > kMaxTextLine + 1) {  // + 1: a stuffed dot
        data_too_long_line_ = true;
        data_partial_line_ = true;
        // Keep a trailing CR: with the LF still to come it ends the line as CRLF.
        pos = in_.back() == '\r' ? in_.size() - 1 : in_.size();
      } else if (state_ != State::kData &&
                 partial > (state_ == State::kAuth || AuthCommand(std::string_view(in_).substr(pos))
                                ? kMaxAuthLine
                                : kMaxCommandLine)) {
        discarding_long_line_ = true;
        pos = in_.back() == '\r' ? in_.size() - 1 : in_.size();
      }
      action = Action::kRead;
      break;
    }
    const std::string_view line(in_.data() + pos, lf + 1 - pos);
    pos = lf + 1;
    if (state_ == State::kData) {
      if (!HandleDataLine(line, CleanCrlf(line))) action = FinishData();
    } else if (!(state_ == State::kAuth ? HandleAuthLine(line) : HandleCommandLine(line))) {
      action = state_ == State::kClosed       ? Action::kClose
               : state_ == State::kWaitAuth   ? Action::kAuthenticate
               : state_ == State::kWaitSender ? Action::kCheckSender
                                              : Action::kStartTls;
    }
  }
  if (action == Action::kStartTls || action == Action::kClose) {
    // RFC 3207 §4.2 / CVE-2011-0411: nothing sent before the handshake may be read after it.
    in_.clear();
  } else {
    in_.erase(0, pos);
  }
  return *action;
}

bool ServerSession::HandleDataLine(std::string_view line, bool clean) {
  if (data_partial_line_) {
    // The tail of a line whose head was dropped: content, never the terminator.
    data_partial_line_ = false;
    data_prev_line_crlf_ = line.ends_with("\r\n");
    if (!clean) data_bad_newline_ = true;
    return true;
  }
  // Only CRLF "." CRLF ends the data (RFC 5321 §4.1.1.4).
  if (data_prev_line_crlf_ && line == ".\r\n") return false;
  data_prev_line_crlf_ = line.ends_with("\r\n");
  if (!clean) data_bad_newline_ = true;
  if (line.front() == '.') line.remove_prefix(1);  // RFC 5321 §4.5.2 transparency
  // The limit applies to the line as it is in the message, after the dot is removed.
  if (line.size() > kMaxTextLine) data_too_long_line_ = true;
  if (data_too_big_ || data_bad_newline_ || data_too_long_line_ || data_no_room_) return true;
  if (data_.size() - data_header_ + line.size() > p_.limits.max_message_size) {
    data_too_big_ = true;
    DropData();
    return true;
  }
  if (p_.budget) {
    if (!p_.budget->Take(line.size())) {
      data_no_room_ = true;
      DropData();
      return true;
    }
    held_ += line.size();
  }
  data_.append(line);
  return true;
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

void ServerSession::TlsStarted(std::string description) {
  tls_active_ = true;
  tls_description_ = std::move(description);
  authenticated_.clear();
  // RFC 3207 §4.2: forget everything learned before the handshake.
  state_ = State::kGreeting;
  esmtp_ = false;
  helo_.clear();
  in_.clear();
  ResetTransaction();
}

bool ServerSession::HandleCommandLine(std::string_view line) {
  ++counts_.total;
  current_verb_ = "command";
  command_sender_.reset();
  command_recipient_.clear();
  // Every command counts toward the limit, and an accepted RCPT is taken off again below; a
  // queued message starts the count over (EnqueueDone).
  if (++commands_without_mail_ > p_.limits.max_commands_without_mail) {
    Reply(421, "4.7.0", p_.hostname + " Error: too many commands without mail");
    state_ = State::kClosed;
    return false;
  }
  if (discarding_long_line_ || line.size() > (AuthCommand(line) ? kMaxAuthLine : kMaxCommandLine)) {
    discarding_long_line_ = false;
    Error(500, "5.5.2", "Error: line too long");
    return state_ != State::kClosed;
  }
  if (!CleanCrlf(line)) {
    Error(500, "5.5.2", "Error: bare <CR> or <LF> received; lines must end with <CR><LF>");
    return state_ != State::kClosed;
  }
  const std::string_view text = line.substr(0, line.size() - 2);
  const Command cmd = SplitCommand(text);
  current_verb_ = cmd.verb == Verb::kUnknown ? "unknown command" : std::string(cmd.name);
  for (char& c : current_verb_) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  switch (cmd.verb) {
    case Verb::kEhlo:
    case Verb::kHelo: {
      const bool ehlo = cmd.verb == Verb::kEhlo;
      ++(ehlo ? counts_.ehlo : counts_.helo);
      if (cmd.argument.empty()) {
        Error(501, "5.5.4", ehlo ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
        break;
      }
      ResetTransaction();
      // Kept for the Received header and the logs: printable, no longer than a host name.
      helo_ = queue::Printable(cmd.argument, 255);
      esmtp_ = ehlo;
      state_ = State::kReady;
      if (!ehlo) {
        Reply(250, "", p_.hostname);
        break;
      }
      out_ += fmt::format("250-{}\r\n", p_.hostname);
      out_ += "250-PIPELINING\r\n";
      out_ += fmt::format("250-SIZE {}\r\n", p_.limits.max_message_size);
      if (p_.starttls_offered && !tls_active_) out_ += "250-STARTTLS\r\n";
      // RFC 4954 §4 and RFC 8314: credentials only inside TLS, so AUTH is offered only there.
      if (p_.auth_offered && tls_active_) out_ += "250-AUTH PLAIN LOGIN\r\n";
      // RFC 8689 §4.1: REQUIRETLS only inside TLS.
      if (tls_active_) out_ += "250-REQUIRETLS\r\n";
      out_ += "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250 SMTPUTF8\r\n";
      break;
    }
    case Verb::kMail: {
      ++counts_.mail;
      if (state_ == State::kGreeting) {
        Error(503, "5.5.1", "Error: send HELO/EHLO first");
        break;
      }
      if (state_ == State::kMail) {
        Error(503, "5.5.1", "Error: nested MAIL command");
        break;
      }
      if (p_.require_tls && !tls_active_) {
        Error(530, "5.7.0", "Must issue a STARTTLS command first");
        break;
      }
      auto args = ParseMail(cmd.argument);
      if (!args) {
        Error(args.error().code, args.error().enhanced, args.error().text);
        break;
      }
      command_sender_ = args->sender;
      if (!authenticated_.empty() && p_.may_send_as &&
          !p_.may_send_as(authenticated_, args->sender)) {
        Reply(553, "5.7.1",
              fmt::format("<{}>: Sender address rejected: not owned by user {}", args->sender,
                          authenticated_));
        break;
      }
      if (args->requiretls && !tls_active_) {
        Reply(530, "5.7.10", "REQUIRETLS needs a TLS session (STARTTLS first)");
        break;
      }
      if (args->size && *args->size > p_.limits.max_message_size) {
        Reply(552, "5.3.4", "Message size exceeds fixed limit");
        break;
      }
      ResetTransaction();
      message_.sender = std::move(args->sender);
      message_.dsn_ret = args->ret;
      message_.dsn_envid = std::move(args->envid);
      message_.requiretls = args->requiretls;
      if (args->auth) {
        // RFC 4954 §5: the mailbox is passed on only when this relay trusts the client to assert
        // it (a trusted network, or a user who may send as it); otherwise as if AUTH=<>.
        const bool vouched = p_.trusted || (!authenticated_.empty() &&
                                            (!p_.may_send_as || args->auth->empty() ||
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
        return false;
      }
      state_ = State::kMail;
      Reply(250, "2.1.0", "Ok");
      break;
    }
    case Verb::kRcpt: {
      ++counts_.rcpt;
      if (state_ != State::kMail) {
        Error(503, "5.5.1", "Error: need MAIL command");
        break;
      }
      auto args = ParseRcpt(cmd.argument, smtputf8_);
      if (!args) {
        Error(args.error().code, args.error().enhanced, args.error().text);
        break;
      }
      command_recipient_ = args->recipient;
      if (!p_.trusted && authenticated_.empty()) {
        // Never an open relay: clients neither trusted nor authenticated may name no recipient.
        Error(554, "5.7.1", "<" + args->recipient + ">: Relay access denied");
        break;
      }
      if (message_.recipients.size() >= p_.limits.max_recipients) {
        Reply(452, "4.5.3", "Error: too many recipients");
        break;
      }
      message_.recipients.push_back(
          {std::move(args->recipient), args->notify, std::move(args->orcpt)});
      --commands_without_mail_;  // bounded by max_recipients instead
      Reply(250, "2.1.5", "Ok");
      break;
    }
    case Verb::kData: {
      ++counts_.data;
      if (state_ != State::kMail) {
        Error(503, "5.5.1", "Error: need MAIL command");
        break;
      }
      if (message_.recipients.empty()) {
        Error(554, "5.5.1", "Error: no valid recipients");
        break;
      }
      if (!cmd.argument.empty()) {
        Error(501, "5.5.4", "Syntax: DATA");
        break;
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
      break;
    }
    case Verb::kRset:
      ++counts_.rset;
      ResetTransaction();
      if (state_ != State::kGreeting) state_ = State::kReady;
      Reply(250, "2.0.0", "Ok");
      break;
    case Verb::kNoop:
      ++counts_.noop;
      Reply(250, "2.0.0", "Ok");
      break;
    case Verb::kQuit:
      ++counts_.quit;
      Reply(221, "2.0.0", "Bye");
      state_ = State::kClosed;
      return false;
    case Verb::kVrfy:
      ++counts_.other;
      if (cmd.argument.empty()) {
        Error(501, "5.5.4", "Syntax: VRFY address");
      } else {
        // RFC 5321 §3.5.3: a relay cannot verify, but will try.
        Reply(252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery");
      }
      break;
    case Verb::kHelp:
      ++counts_.other;
      Reply(214, "2.0.0",
            "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS AUTH; see "
            "RFC 5321");
      break;
    case Verb::kStartTls:
      ++counts_.starttls;
      if (!p_.starttls_offered) {
        Error(502, "5.5.1", "Error: command not implemented");
      } else if (tls_active_) {
        Error(554, "5.5.1", "Error: TLS already active");
      } else if (!cmd.argument.empty()) {
        Error(501, "5.5.4", "Syntax: STARTTLS");
      } else if (state_ == State::kMail) {
        Error(503, "5.5.1", "Error: MAIL transaction in progress");
      } else {
        Reply(220, "2.0.0", "Ready to start TLS");
        return false;
      }
      break;
    case Verb::kAuth:
      ++counts_.auth;
      return HandleAuth(cmd.argument);
    case Verb::kExpn:
    case Verb::kUnknown:
      ++counts_.other;
      Error(cmd.verb == Verb::kUnknown ? 500 : 502, cmd.verb == Verb::kUnknown ? "5.5.2" : "5.5.1",
            cmd.verb == Verb::kUnknown ? "Error: command not recognized"
                                       : "Error: command not implemented");
      break;
  }
  return state_ != State::kClosed;
}

bool ServerSession::HandleAuthLine(std::string_view line) {
  state_ = State::kReady;  // whatever comes, this response ends or continues the exchange
  // The tail of a response too long to keep ends the exchange here, not the next command.
  if (std::exchange(discarding_long_line_, false) || line.size() > kMaxAuthLine ||
      !CleanCrlf(line)) {
    Error(500, "5.5.2", "Error: malformed authentication response");
    return state_ != State::kClosed;
  }
  return AuthStep(sasl_.Continue(line.substr(0, line.size() - 2)));
}

void ServerSession::SenderChecked(const std::optional<Refusal>& refusal) {
  if (refusal) {
    state_ = State::kReady;
    Reply(refusal->code, refusal->enhanced, refusal->text);
    ResetTransaction();
  } else {
    state_ = State::kMail;
    Reply(250, "2.1.0", "Ok");
  }
}

std::string ServerSession::CommandStats() const {
  std::string out;
  auto add = [&](const char* name, unsigned n) {
    if (n) out += fmt::format("{}={} ", name, n);
  };
  add("ehlo", counts_.ehlo);
  add("helo", counts_.helo);
  add("starttls", counts_.starttls);
  add("auth", counts_.auth);
  add("mail", counts_.mail);
  add("rcpt", counts_.rcpt);
  add("data", counts_.data);
  add("rset", counts_.rset);
  add("noop", counts_.noop);
  add("quit", counts_.quit);
  add("unknown", counts_.other);
  out += fmt::format("commands={}", counts_.total);
  return out;
}

}  // namespace danerelay::relay
