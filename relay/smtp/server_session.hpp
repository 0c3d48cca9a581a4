#pragma once
// The SMTP server session as a sans-I/O state machine (RFC 5321, with PIPELINING RFC 2920,
// STARTTLS RFC 3207). The I/O layer feeds it bytes and carries out what it asks for:
//
//   Feed(bytes); for (;;) switch (Next()) {
//     kRead:     send TakeOutput(), read more, Feed()
//     kEnqueue:  store TakeMessage(); EnqueueDone(result)     (no reply until the commit)
//     kStartTls: send TakeOutput(), TLS handshake, TlsStarted(description) or close
//     kClose:    send TakeOutput(), close
//   }
//
// Replies to pipelined commands accumulate in the output until the session needs input, so a
// pipelining client gets them in one write (RFC 2920 §3.2).
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "queue/message.hpp"
#include "relay/options.hpp"
#include "relay/smtp/byte_budget.hpp"
#include "relay/smtp/sasl.hpp"

namespace danerelay::relay {

struct Command;  // relay/smtp/smtp_command.hpp

struct SessionParams {
  std::string hostname;
  LimitsOptions limits;
  bool starttls_offered = false;
  bool trusted = false;  // the client may relay (trusted network)
  std::string client_address;
  std::function<std::string()> next_queue_id;
  std::function<queue::TimePoint()> now;
  ByteBudget* budget = nullptr;  // shared by all sessions; nullptr: no limit but max_message_size
  bool auth_offered = false;     // AUTH, inside TLS only ([auth] users_file set, listener auth)
  bool require_tls = false;      // MAIL only once TLS is active (STARTTLS or implicit TLS)
  // [privacy] hide_client: the Received header names no client for authenticated submissions
  // (hide_auth) and for unauthenticated ones from trusted networks (hide_trusted).
  bool hide_auth = false;
  bool hide_trusted = false;
  // Whether the authenticated `user` may use `sender` in MAIL FROM ([auth] senders; as
  // Postfix's reject_sender_login_mismatch). Empty: any sender.
  std::function<bool(std::string_view user, std::string_view sender)> may_send_as;
  bool check_sender = false;  // MAIL FROM waits for the sender checks (kCheckSender)
  // Sending quotas ([quotas]): asked just before MAIL (recipient false) or a RCPT (true) gets
  // its 250; counts it, or says why not (450 4.7.1, nothing counted). Empty: no quotas.
  std::function<std::optional<std::string>(std::string_view user, std::string_view sender,
                                           bool recipient)>
      quota;
};

// A reply that refuses something, decided outside the session (the sender checks).
struct Refusal {
  int code = 550;
  std::string enhanced;
  std::string text;
};

class ServerSession {
 public:
  enum class Action { kRead, kEnqueue, kStartTls, kAuthenticate, kCheckSender, kClose };

  explicit ServerSession(SessionParams params);
  ~ServerSession();
  ServerSession(const ServerSession&) = delete;
  ServerSession& operator=(const ServerSession&) = delete;

  // The 220 greeting (also placed in the output).
  void Start();
  void Feed(std::string_view bytes);
  Action Next();

  std::string TakeOutput();
  // What the session refused: the command refused ("RCPT", "END-OF-MESSAGE", "unknown
  // command"), for counting, and the log line in Postfix's form ("NOQUEUE: reject: RCPT from
  // unknown[192.0.2.1]: 554 5.7.1 <x@y>: Relay access denied; from=<a@b> to=<x@y> proto=ESMTP
  // helo=<h>"), for people. A 421 that ends the session (timeout, shutdown) refuses no command.
  struct Reject {
    std::string command;
    std::string log_line;
  };
  std::vector<Reject> TakeEvents();
  queue::NewMessage TakeMessage();
  // Called after kEnqueue with the queue's answer; the reply goes to the output.
  void EnqueueDone(bool stored, std::string_view error = {});
  // Instead of EnqueueDone: the message was not queued for a passing reason other than the
  // queue (signing failed); 451 4.3.0 with `text`.
  void EnqueueRefused(std::string_view text);
  // Called after kStartTls when the handshake succeeded. RFC 3207 §4.2: the session starts over.
  // On an implicit-TLS listener, called once before Start().
  void TlsStarted(std::string description);
  // After kAuthenticate: the credentials to verify, then the verdict. The password is handed
  // out once and not kept.
  const std::string& AuthUser() const { return auth_user_; }
  // The SASL mechanism of the last AUTH command ("PLAIN", "LOGIN"), for the log.
  const std::string& AuthMechanism() const { return auth_mechanism_; }
  std::string TakePassword() { return std::exchange(auth_password_, {}); }
  void AuthDone(bool ok);
  // After kCheckSender: the sender of the MAIL command (never <>), then the checks' verdict.
  const std::string& SenderToCheck() const { return message_.sender; }
  void SenderChecked(const std::optional<Refusal>& refusal);

  // When the bytes the session waits for are due, it being `now`; called before each read.
  // Deadlines, not timeouts per read, so that a client cannot hold a session by trickling
  // bytes: a whole command (or AUTH response) line is due within command_timeout of when the
  // session began waiting for it; DATA gains octets/min_data_rate seconds with each read, never
  // beyond data_timeout from now (as Postfix's smtpd_min_data_rate); a client outside
  // trusted_networks must have authenticated within untrusted_auth_timeout of the first call.
  using SteadyTime = std::chrono::steady_clock::time_point;
  SteadyTime ReadDeadline(SteadyTime now);
  // The deadline passed: 421 4.7.0 when the client failed to authenticate in time, else
  // 421 4.4.2; the session asks for close.
  void TimedOut(SteadyTime now);
  // Replies 421 and asks for close (used on timeout, 4.4.2, and shutdown, 4.3.2).
  void Abort(std::string_view reason, std::string_view enhanced = "4.4.2");
  // Message data is being received: a shutdown lets it finish (bounded) before the 421.
  bool InData() const { return state_ == State::kData; }

  // Counters for the disconnect log line, like Postfix's "ehlo=1 mail=1 rcpt=1 data=1 quit=1".
  std::string CommandStats() const;
  // The command being handled (or "END-OF-MESSAGE"), for "lost connection after DATA".
  std::string_view LastCommand() const { return current_verb_; }

 private:
  enum class State {
    kGreeting,
    kReady,
    kMail,
    kData,
    kWaitEnqueue,
    kAuth,
    kWaitAuth,
    kWaitSender,
    kClosed
  };

  void Reply(int code, std::string_view enhanced, std::string_view text);
  void Error(int code, std::string_view enhanced, std::string_view text);
  void ResetTransaction();
  void DropData();  // frees the data and gives its bytes back to the budget
  bool HandleCommandLine(std::string_view line);  // false: stop processing (action pending)
  bool Dispatch(const Command& cmd);              // as HandleCommandLine, for a clean line
  // One per verb, called by Dispatch; each puts its reply in the output.
  void OnHello(bool ehlo, std::string_view argument);  // EHLO and HELO
  void OnMail(std::string_view argument);              // may leave the session in kWaitSender
  void OnRcpt(std::string_view argument);
  void OnData(std::string_view argument);
  void OnRset();
  // The quota's verdict on the MAIL or RCPT being answered; false: refused with 450 4.7.1.
  bool QuotaAllows(bool recipient, std::string_view address);
  void OnVrfy(std::string_view argument);
  bool OnStartTls(std::string_view argument);  // false: the handshake is due
  bool OnAuth(std::string_view argument);      // false: credentials are ready
  bool HandleDataLine(std::string_view line, bool clean_crlf);
  bool HandleAuthLine(std::string_view line);  // a continuation line
  bool AuthStep(SaslExchange::Status status);  // false: credentials are ready
  std::optional<Action> FinishData();
  std::string ReceivedHeader(const std::string& id) const;
  std::string Protocol() const;

  SessionParams p_;
  State state_ = State::kGreeting;
  std::string in_;
  std::string out_;
  std::vector<Reject> events_;
  // For reject lines: the addresses of the command being answered (a MAIL's sender before it
  // is taken, a RCPT's recipient), cleared with each command.
  std::optional<std::string> command_sender_;
  std::string command_recipient_;
  std::string auth_mechanism_;  // of the last AUTH command
  std::string current_verb_ = "CONNECT";
  std::string pending_id_;
  std::optional<Action> pending_action_;
  bool esmtp_ = false;
  bool tls_active_ = false;
  std::string tls_description_;
  std::string helo_;
  SaslExchange sasl_;
  std::string auth_user_, auth_password_;  // being verified
  std::string authenticated_;              // the user, once AUTH succeeded
  std::uint32_t errors_ = 0;
  std::uint32_t commands_without_mail_ = 0;  // [limits] max_commands_without_mail
  bool discarding_long_line_ = false;
  // ReadDeadline's state.
  bool deadlines_started_ = false;
  SteadyTime connected_{};
  SteadyTime line_due_{};
  bool data_due_set_ = false;  // data_due_ belongs to the DATA under way
  SteadyTime data_due_{};
  std::uint64_t data_fed_ = 0;  // octets fed in DATA since the last ReadDeadline

  // Transaction.
  queue::NewMessage message_;
  bool body_8bitmime_ = false;
  bool smtputf8_ = false;
  std::string data_;                 // the Received header, then the message as it arrives
  std::size_t data_header_ = 0;      // the Received header's size, not counted against SIZE
  std::uint64_t held_ = 0;           // bytes taken from p_.budget for this message
  bool data_no_room_ = false;        // the budget was spent: 452 at the end
  bool data_prev_line_crlf_ = true;  // the previous line ended in CRLF (so "." can end DATA)
  bool data_bad_newline_ = false;
  bool data_too_long_line_ = false;
  bool data_too_big_ = false;
  bool data_partial_line_ = false;  // a long line's head was dropped; its tail is still to come

  struct Counts {
    unsigned ehlo = 0, helo = 0, mail = 0, rcpt = 0, data = 0, rset = 0, noop = 0, quit = 0,
             starttls = 0, auth = 0, other = 0, total = 0;
  } counts_;
};

}  // namespace danerelay::relay
