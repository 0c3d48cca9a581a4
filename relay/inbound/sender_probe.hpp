#pragma once
// Sender address verification for the operator's own domains ([sender_checks] verify_domains;
// seed 002: "analog der Empfänger-Verifikation", Postfix's reject_unverified_sender): one SMTP
// session to the domain's mail exchanger that asks whether it would take mail for the address
// and sends none: EHLO, MAIL FROM:<>, RCPT TO:<address>, QUIT.
#include <asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace danerelay::relay {

struct ProbeResult {
  enum Verdict { kValid, kInvalid, kUnknown } verdict = kUnknown;
  std::string reply;  // the RCPT reply, or why the probe did not complete
};

asio::awaitable<ProbeResult> ProbeSender(const std::string& ip, std::uint16_t port,
                                         const std::string& helo, const std::string& address,
                                         std::chrono::seconds timeout);

}  // namespace danerelay::relay
