#include "relay/smtp/server_session.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

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

std::vector<ServerSession::Reject> ServerSession::TakeEvents() {
  return std::exchange(events_, {});
}

queue::NewMessage ServerSession::TakeMessage() { return std::move(message_); }

void ServerSession::Reply(int code, std::string_view enhanced, std::string_view text) {
  // A failed AUTH is logged as its SASL warning (the line fail2ban reads), not as a reject.
  if (code >= 400 && current_verb_ != "AUTH") {
    // Postfix's smtpd form: the queue ID once the data has one, the sender of the MAIL being
    // answered or of the transaction, the recipient of the RCPT being answered.
    const bool queued = current_verb_ == "END-OF-MESSAGE" && !pending_id_.empty();
    events_.push_back(
        {current_verb_,
         fmt::format("{}: reject: {} from unknown[{}]: {} {}{}{}; from=<{}>{} proto={} helo=<{}>",
                     queued ? pending_id_ : "NOQUEUE", current_verb_, p_.client_address, code,
                     enhanced, enhanced.empty() ? "" : " ", text,
                     command_sender_ ? *command_sender_ : message_.sender,
                     command_recipient_.empty() ? "" : " to=<" + command_recipient_ + ">",
                     Protocol(), helo_)});
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
  // Every command counts toward the limit, and an accepted RCPT is taken off again (OnRcpt); a
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
  const Command cmd = SplitCommand(line.substr(0, line.size() - 2));
  current_verb_ = cmd.verb == Verb::kUnknown ? "unknown command" : std::string(cmd.name);
  for (char& c : current_verb_) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return Dispatch(cmd);
}

bool ServerSession::Dispatch(const Command& cmd) {
  switch (cmd.verb) {
    case Verb::kEhlo:
    case Verb::kHelo:
      OnHello(cmd.verb == Verb::kEhlo, cmd.argument);
      break;
    case Verb::kMail:
      OnMail(cmd.argument);
      return state_ != State::kClosed && state_ != State::kWaitSender;
    case Verb::kRcpt:
      OnRcpt(cmd.argument);
      break;
    case Verb::kData:
      OnData(cmd.argument);
      break;
    case Verb::kRset:
      OnRset();
      break;
    case Verb::kNoop:
      ++counts_.noop;
      Reply(250, "2.0.0", "Ok");
      break;
    case Verb::kQuit:
      ++counts_.quit;
      Reply(221, "2.0.0", "Bye");
      state_ = State::kClosed;
      break;
    case Verb::kVrfy:
      OnVrfy(cmd.argument);
      break;
    case Verb::kHelp:
      ++counts_.other;
      Reply(214, "2.0.0",
            "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS AUTH; see "
            "RFC 5321");
      break;
    case Verb::kStartTls:
      return OnStartTls(cmd.argument);
    case Verb::kAuth:
      return OnAuth(cmd.argument);
    case Verb::kExpn:
      ++counts_.other;
      Error(502, "5.5.1", "Error: command not implemented");
      break;
    case Verb::kUnknown:
      ++counts_.other;
      Error(500, "5.5.2", "Error: command not recognized");
      break;
  }
  return state_ != State::kClosed;
}

void ServerSession::OnHello(bool ehlo, std::string_view argument) {
  ++(ehlo ? counts_.ehlo : counts_.helo);
  if (argument.empty()) {
    Error(501, "5.5.4", ehlo ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
    return;
  }
  ResetTransaction();
  // Kept for the Received header and the logs: printable, no longer than a host name.
  helo_ = queue::Printable(argument, 255);
  esmtp_ = ehlo;
  state_ = State::kReady;
  if (!ehlo) {
    Reply(250, "", p_.hostname);
    return;
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
}

void ServerSession::OnRset() {
  ++counts_.rset;
  ResetTransaction();
  if (state_ != State::kGreeting) state_ = State::kReady;
  Reply(250, "2.0.0", "Ok");
}

void ServerSession::OnVrfy(std::string_view argument) {
  ++counts_.other;
  if (argument.empty()) {
    Error(501, "5.5.4", "Syntax: VRFY address");
  } else {
    // RFC 5321 §3.5.3: a relay cannot verify, but will try.
    Reply(252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery");
  }
}

bool ServerSession::OnStartTls(std::string_view argument) {
  ++counts_.starttls;
  if (!p_.starttls_offered) {
    Error(502, "5.5.1", "Error: command not implemented");
  } else if (tls_active_) {
    Error(554, "5.5.1", "Error: TLS already active");
  } else if (!argument.empty()) {
    Error(501, "5.5.4", "Syntax: STARTTLS");
  } else if (state_ == State::kMail) {
    Error(503, "5.5.1", "Error: MAIL transaction in progress");
  } else {
    Reply(220, "2.0.0", "Ready to start TLS");
    return false;
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
