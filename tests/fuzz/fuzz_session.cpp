// Fuzz target: the SMTP server session (relay/smtp/server_session.cpp) fed arbitrary bytes in
// chunks, with the I/O layer's answers (queue result, AUTH verdict, sender check, TLS) chosen
// by the input. Invariants: every reply is a well-formed line; a message handed to the queue
// has only CRLF line ends, at least one recipient, and no line over 998 characters; the shared
// byte budget is given back in full.
#include <cstdint>
#include <string>

#include "relay/smtp/server_session.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

using danerelay::fuzz::Violated;

void CheckOutput(std::string_view out) {
  if (!danerelay::fuzz::OnlyCrlf(out) || (!out.empty() && !out.ends_with("\r\n"))) {
    Violated("reply lines", out);
  }
  std::size_t pos = 0;
  while (pos < out.size()) {
    const std::size_t end = out.find("\r\n", pos);
    const std::string_view line = out.substr(pos, end - pos);
    if (line.size() < 4 || line[0] < '2' || line[0] > '5' || (line[3] != ' ' && line[3] != '-')) {
      Violated("reply line shape", line);
    }
    if (line.size() > 512) Violated("reply line over 512 octets", line);
    pos = end + 2;
  }
}

void CheckMessage(const danerelay::queue::NewMessage& m) {
  if (m.recipients.empty()) Violated("message without recipients", m.content);
  if (!danerelay::fuzz::OnlyCrlf(m.content) || !m.content.ends_with("\r\n")) {
    Violated("message line ends", m.content);
  }
  std::size_t pos = 0;
  while (pos < m.content.size()) {
    const std::size_t end = m.content.find("\r\n", pos);
    if (end - pos > 998) Violated("message line over 998 characters", m.content);
    pos = end + 2;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using danerelay::relay::ServerSession;
  danerelay::fuzz::Input in(data, size);
  const std::uint8_t mode = in.Byte();
  const std::size_t chunk = 1 + in.Byte() % 128;
  const std::uint64_t budget_limit = mode & 1 ? 4096 : 1 << 20;
  danerelay::relay::ByteBudget budget(budget_limit);
  {
    danerelay::relay::SessionParams p;
    p.hostname = "relay.test";
    p.limits.max_message_size = 20000;
    p.limits.max_recipients = 5;
    p.limits.max_errors = 10;
    p.limits.max_commands_without_mail = 30;
    p.starttls_offered = (mode & 2) != 0;
    p.trusted = (mode & 4) != 0;
    p.auth_offered = (mode & 8) != 0;
    p.require_tls = (mode & 16) != 0;
    p.check_sender = (mode & 32) != 0;
    p.client_address = "192.0.2.7";
    int next_id = 0;
    p.next_queue_id = [&next_id] { return "ID" + std::to_string(++next_id); };
    p.now = [] { return danerelay::queue::TimePoint(std::chrono::seconds(1795337301)); };
    p.budget = &budget;
    p.may_send_as = [](std::string_view, std::string_view sender) {
      return !sender.starts_with("x");
    };
    ServerSession s(std::move(p));
    if (mode & 64) s.TlsStarted("TLSv1.3 (implicit)");
    s.Start();
    const std::string_view bytes = in.Rest();
    std::size_t pos = 0;
    std::uint8_t turn = mode;
    bool closed = false;
    while (!closed) {
      const auto action = s.Next();
      turn = static_cast<std::uint8_t>(turn * 33 + 7);
      switch (action) {
        case ServerSession::Action::kEnqueue: {
          const auto message = s.TakeMessage();
          CheckMessage(message);
          s.EnqueueDone(turn % 5 != 0, "disk full");
          continue;
        }
        case ServerSession::Action::kAuthenticate:
          (void)s.AuthUser();
          (void)s.TakePassword();
          s.AuthDone(turn % 2 == 0);
          continue;
        case ServerSession::Action::kCheckSender:
          (void)s.SenderToCheck();
          if (turn % 3 == 0) {
            s.SenderChecked(danerelay::relay::Refusal{550, "5.1.8", "refused"});
          } else {
            s.SenderChecked(std::nullopt);
          }
          continue;
        case ServerSession::Action::kStartTls:
          CheckOutput(s.TakeOutput());
          if (turn % 4 == 0) {
            closed = true;  // the handshake failed
          } else {
            s.TlsStarted("TLSv1.3");
          }
          continue;
        case ServerSession::Action::kClose:
          CheckOutput(s.TakeOutput());
          closed = true;
          continue;
        case ServerSession::Action::kRead:
          CheckOutput(s.TakeOutput());
          (void)s.TakeEvents();
          if (pos >= bytes.size()) {
            s.Abort("timeout exceeded");
          } else {
            s.Feed(bytes.substr(pos, chunk));
            pos += chunk;
          }
          continue;
      }
    }
    (void)s.CommandStats();
  }
  if (!budget.Take(budget_limit)) Violated("budget not given back", in.Rest());
  return 0;
}
