#include "relay/delivery/smtp_client.hpp"

#include <spdlog/spdlog.h>
#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/this_coro.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "dns/idn.hpp"
#include "queue/orcpt.hpp"
#include "relay/daemon/logging.hpp"
#include "relay/daemon/metrics.hpp"
#include "relay/delivery/seven_bit.hpp"
#include "relay/delivery/upstream_auth.hpp"
#include "relay/io/connection.hpp"
#include "relay/io/reply_reader.hpp"
#include "relay/smtp/sasl.hpp"
#include "relay/smtp/smtp_reply.hpp"

namespace danerelay::relay {
namespace {

using asio::ip::tcp;

using queue::Cause;
using queue::Xtext;

std::string DefaultStatus(const Reply& r) {
  if (!r.enhanced.empty()) return r.enhanced;
  return r.Positive() ? "2.0.0" : r.Transient() ? "4.0.0" : "5.0.0";
}

queue::RecipientState StateOf(const Reply& r) {
  if (r.Positive()) return queue::RecipientState::kDelivered;
  return r.Transient() ? queue::RecipientState::kDeferred : queue::RecipientState::kFailed;
}

// Reads whole replies from a connection.

}  // namespace

std::string CertificateResultType(const tls::Verdict& v, Cause cause) {
  if (v.verify_error == X509_V_ERR_HOSTNAME_MISMATCH) return "certificate-host-mismatch";
  if (v.verify_error == X509_V_ERR_CERT_HAS_EXPIRED) return "certificate-expired";
  return queue::ResultType(cause);
}

bool NamesMe(const Reply& reply, std::string_view my_name) {
  if (reply.lines.empty() || my_name.empty()) return false;
  const std::string_view first = reply.lines[0];
  const std::string_view word = first.substr(0, first.find_first_of(" \t"));
  return LowerAscii(word) == LowerAscii(my_name);
}

std::vector<std::string_view> DotStuff(std::string_view content) {
  std::vector<std::string_view> out;
  // Line by line with memchr (a byte loop here was a tenth of the daemon's CPU time); a piece
  // ends only where a dot must be added.
  size_t piece = 0, pos = 0;
  while (pos < content.size()) {
    if (content[pos] == '.') {
      out.push_back(content.substr(piece, pos - piece));
      out.push_back(".");
      piece = pos;
    }
    const void* nl = std::memchr(content.data() + pos, '\n', content.size() - pos);
    pos = nl ? static_cast<size_t>(static_cast<const char*>(nl) - content.data()) + 1
             : content.size();
  }
  out.push_back(content.substr(piece));
  out.push_back(content.empty() || content.ends_with("\r\n") ? ".\r\n" : "\r\n.\r\n");
  return out;
}

bool HeaderHasUtf8(std::string_view content) {
  size_t end = content.find("\r\n\r\n");
  if (content.starts_with("\r\n")) end = 0;
  const std::string_view header = content.substr(0, end);
  return std::any_of(header.begin(), header.end(),
                     [](char c) { return static_cast<unsigned char>(c) > 0x7f; });
}

// A live session after EHLO (and STARTTLS): what a transaction needs, and what the connection
// cache keeps between messages. Not movable (the reader refers to the connection).
struct SmtpSession {
  explicit SmtpSession(tcp::socket s) : conn(std::move(s)), reader(conn) {}
  Connection conn;
  ReplyReader reader;
  Reply ehlo;
  std::string peer;
  std::string local_ip;
  std::int64_t session = 0;
  bool starttls_offered = false;
  std::optional<tls::Verdict> verdict;
  std::chrono::steady_clock::time_point idle_since;
  std::uint32_t transactions = 0;  // messages sent over it ([shaping] messages_per_connection)
  std::string site;                // ClientRequest::site

  // Sends one command line and reads the reply. Arguments are views or named strings: GCC 12
  // destroys temporaries that live across a co_await twice.
  asio::awaitable<tl::expected<Reply, std::string>> Command(std::string_view line,
                                                            std::chrono::seconds timeout) {
    const std::string wire = std::string(line) + "\r\n";
    if (auto wec = co_await conn.Write(wire, timeout)) co_return tl::unexpected(wec.message());
    co_return co_await reader.Read(timeout);
  }
  asio::awaitable<void> Quit() {
    (void)co_await Command("QUIT", std::chrono::seconds(10));
    co_await conn.Close();
  }
};

namespace {

// Marks the host as failed (the RFC 8460 result type from the cause unless given). Returns
// false, for a step to return.
bool FailHost(ClientResult& res, queue::Failure failure) {
  res.host_failed = true;
  if (failure.result_type.empty()) failure.result_type = queue::ResultType(failure.cause);
  res.failure = std::move(failure);
  return false;
}

bool FailHost(ClientResult& res, Cause cause, std::string status, std::string text) {
  return FailHost(res, {cause, std::move(status), "", std::move(text)});
}

// A negative reply, kept for [[shaping.on_reply]] (a few at most: one per recipient could be many).
void NoteRefusal(ClientResult& res, const Reply& r) {
  if (r.Positive() || res.refusals.size() >= ClientResult::kMaxRefusals) return;
  res.refusals.push_back(r.Text());
}

bool TlsRequired(const ClientRequest& req) {
  return req.tls == tls::Requirement::kEncrypt || req.tls == tls::Requirement::kDane;
}

// A TCP connection to the request's address. Null on failure, `res` says why.
asio::awaitable<std::shared_ptr<SmtpSession>> Connect(const ClientRequest& req, ClientResult& res) {
  std::error_code ec;
  const auto address = asio::ip::make_address(req.ip, ec);
  if (ec) {
    FailHost(res, Cause::kConnect, "4.4.1", "bad address " + req.ip);
    co_return nullptr;
  }
  auto s = std::make_shared<SmtpSession>(tcp::socket(co_await asio::this_coro::executor));
  s->peer = fmt::format("{}[{}]:{}", req.mx_host, req.ip, req.port);
  Connection& conn = s->conn;
  conn.socket.open(address.is_v6() ? tcp::v6() : tcp::v4(), ec);
  const std::string& source = address.is_v6() ? req.source_address6 : req.source_address;
  if (!ec && !source.empty()) {
    // A source address we do not have (or may not use) is our problem: deferred, said plainly.
    conn.socket.bind(tcp::endpoint(asio::ip::make_address(source, ec), 0), ec);
    if (ec) {
      FailHost(
          res, Cause::kLocalSetup, "4.3.0",
          fmt::format("cannot use source address {} for {}: {}", source, s->peer, ec.message()));
      co_return nullptr;
    }
  }
  if (!ec) {
    conn.deadline.Arm(req.timeouts.connect);
    std::tie(ec) = co_await conn.socket.async_connect(tcp::endpoint(address, req.port), kUseTuple);
    conn.deadline.Disarm();
    if (conn.deadline.expired()) ec = asio::error::timed_out;
  }
  if (ec) {
    FailHost(res, Cause::kConnect, "4.4.1",
             fmt::format("connect to {}: {}", s->peer, ec.message()));
    co_return nullptr;
  }
  // RFC 8460 §4.4: a failure detail names the sending MTA's address of the session.
  if (const auto local = conn.socket.local_endpoint(ec); !ec) {
    s->local_ip = res.local_ip = local.address().to_string();
  }
  co_return s;
}

// A mail loop: the next hop is this relay under another address (Postfix's "host greeted me
// with my own hostname"). The delivery agent returns the mail 5.4.6.
bool LoopsBack(const SmtpSession& s, const ClientRequest& req, const Reply& reply,
               std::string_view where, ClientResult& res) {
  if (!NamesMe(reply, req.helo_name)) return false;
  res.loops_back = true;
  FailHost(res, {Cause::kLoop, "5.4.6", "",
                 fmt::format("host {} {} my own hostname {}", s.peer, where, req.helo_name),
                 /*permanent=*/true});
  return true;
}

// The greeting (RFC 5321 §4.3.1). False when it was lost or refusing, or names ourselves.
asio::awaitable<bool> Greet(SmtpSession& s, const ClientRequest& req, ClientResult& res) {
  auto greeting = co_await s.reader.Read(req.timeouts.greeting);
  if (!greeting) {
    co_return FailHost(
        res, Cause::kSession, "4.4.2",
        fmt::format("{} while reading the greeting from {}", greeting.error(), s.peer));
  }
  if (!greeting->Positive()) {
    NoteRefusal(res, *greeting);
    co_await s.Quit();
    co_return FailHost(res, Cause::kRefused, "4.4.2",
                       fmt::format("host {} refused to talk to me: {}", s.peer, greeting->Text()));
  }
  if (LoopsBack(s, req, *greeting, "greeted me with", res)) {
    co_await s.Quit();
    co_return false;
  }
  co_return true;
}

// EHLO, before and after STARTTLS alike. Nullopt when it failed: lost (kSession), or refused
// (kRefused, QUIT).
asio::awaitable<std::optional<Reply>> Ehlo(SmtpSession& s, const ClientRequest& req,
                                           ClientResult& res) {
  const std::string line = "EHLO " + req.helo_name;
  auto ehlo = co_await s.Command(line, req.timeouts.command);
  if (!ehlo) {
    FailHost(res, Cause::kSession, "4.4.2",
             fmt::format("{} after EHLO to {}", ehlo.error(), s.peer));
    co_return std::nullopt;
  }
  if (!ehlo->Positive()) {
    NoteRefusal(res, *ehlo);
    co_await s.Quit();
    FailHost(res, Cause::kRefused, "4.4.2",
             fmt::format("host {} said: {} (in reply to EHLO)", s.peer, ehlo->Text()));
    co_return std::nullopt;
  }
  co_return std::move(*ehlo);
}

// Why the verdict of an established TLS session does not do under the policy: not verified
// under DANE, or not trusted under an MTA-STS policy in mode enforce (RFC 8461 §4.2).
std::optional<queue::Failure> VerdictFailure(const ClientRequest& req, const tls::Verdict& v,
                                             const std::string& peer) {
  if (req.tls == tls::Requirement::kDane && v.kind != tls::Verdict::Kind::kVerified) {
    if (req.webpki_cause == Cause::kTlsPolicyNotVerified) {  // "fingerprint": pins, not DNS
      return queue::Failure{Cause::kTlsPolicyNotVerified, "4.7.5",
                            CertificateResultType(v, Cause::kTlsPolicyNotVerified),
                            fmt::format("Server certificate matches no pinned fingerprint "
                                        "(TLS policy \"fingerprint\"): {}",
                                        peer)};
    }
    return queue::Failure{Cause::kDaneNotVerified, "4.7.5",
                          CertificateResultType(v, Cause::kDaneNotVerified),
                          fmt::format("Server certificate not verified ({}): {}", v.reason, peer)};
  }
  if (req.webpki_required && v.kind != tls::Verdict::Kind::kTrusted) {
    const bool sts = req.webpki_cause == Cause::kStsNotTrusted;
    return queue::Failure{
        req.webpki_cause, "4.7.5", CertificateResultType(v, req.webpki_cause),
        fmt::format("Server certificate not trusted under the {} ({}): {}",
                    sts ? "MTA-STS policy" : "TLS policy \"verify\"", v.reason, peer)};
  }
  return std::nullopt;
}

// The TLS handshake after the 220 to STARTTLS, under DANE and the MTA-STS check as the request
// asks, and the verdict's check. False on failure; a failed opportunistic handshake asks for
// the retry in plain text.
asio::awaitable<bool> Handshake(SmtpSession& s, const ClientRequest& req, ClientResult& res) {
  Connection& conn = s.conn;
  const tls::DaneSetup* dane = req.dane ? &*req.dane : nullptr;
  std::string prepare_error, client_cert_error;
  const std::error_code hs = co_await conn.StartTls(
      *req.tls_context, asio::ssl::stream_base::client, req.timeouts.command, [&](ssl_st* ssl) {
        const std::vector<std::string> names = !req.webpki_check ? std::vector<std::string>{}
                                               : req.webpki_names.empty()
                                                   ? std::vector<std::string>{req.mx_host}
                                                   : req.webpki_names;
        auto ok = tls::PrepareClient(ssl, req.mx_host, dane, names);
        if (!ok) prepare_error = ok.error();
        if (ok && !req.client_cert_file.empty()) {
          auto cert = tls::UseClientCertificate(ssl, req.client_cert_file.string(),
                                                req.client_key_file.string());
          if (!cert) client_cert_error = cert.error();
        }
      });
  if (!client_cert_error.empty()) {
    co_await conn.Close();
    co_return FailHost(res, Cause::kLocalSetup, "4.3.0",
                       fmt::format("TLS with {}: {}", s.peer, client_cert_error));
  }
  if (!prepare_error.empty() && (dane || req.webpki_required)) {
    co_await conn.Close();
    co_return FailHost(res, Cause::kDaneSetup, "4.7.5",
                       fmt::format("DANE setup for {}: {}", s.peer, prepare_error));
  }
  if (hs) {
    co_await conn.Close();
    res.retry_plaintext = !TlsRequired(req) && !req.implicit_tls;
    co_return FailHost(res, Cause::kTlsHandshake, "4.7.5",
                       fmt::format("TLS handshake with {} failed: {}", s.peer, hs.message()));
  }
  s.verdict = res.verdict = tls::GetVerdict(conn.tls->native_handle(), dane != nullptr);
  Log(Service::kSmtp)
      .info("{} TLS connection established to {}: {}", tls::ToString(res.verdict->kind), s.peer,
            res.verdict->protocol);
  if (auto failure = VerdictFailure(req, *res.verdict, s.peer)) {
    co_await s.Quit();
    co_return FailHost(res, std::move(*failure));
  }
  co_return true;
}

// STARTTLS, the handshake, and EHLO again into s.ehlo (RFC 3207 §4.2). A refused STARTTLS
// leaves the session in plain text where TLS is not required. False on failure.
asio::awaitable<bool> StartTls(SmtpSession& s, const ClientRequest& req, ClientResult& res) {
  auto starttls = co_await s.Command("STARTTLS", req.timeouts.command);
  if (!starttls) {
    co_return FailHost(res, Cause::kSession, "4.4.2",
                       fmt::format("{} after STARTTLS to {}", starttls.error(), s.peer));
  }
  if (starttls->code != 220) {
    NoteRefusal(res, *starttls);
    if (!TlsRequired(req)) co_return true;
    co_await s.Quit();
    co_return FailHost(res, Cause::kStartTlsRefused, "4.7.5",
                       fmt::format("STARTTLS refused by {}: {}", s.peer, starttls->Text()));
  }
  if (!co_await Handshake(s, req, res)) co_return false;
  s.reader.Reset();
  auto ehlo = co_await Ehlo(s, req, res);
  if (!ehlo) co_return false;
  s.ehlo = std::move(*ehlo);
  co_return true;
}

// A refused or impossible AUTH to an upstream: deferred, never bounced (a rotated password must
// not return the queue to its senders), with a warning and a count.
bool AuthFails(ClientResult& res, const SmtpSession& s, const ClientRequest& req,
               std::string status, const std::string& why) {
  Log(Service::kSmtp)
      .warn("SASL authentication to {} (route {}) failed: {}", s.peer, req.route, why);
  Metrics::Get().Add("danerelay_upstream_auth_failures_total");
  return FailHost(res, Cause::kUpstreamAuth, std::move(status),
                  fmt::format("SASL authentication to {} failed: {}", s.peer, why));
}

// RFC 4954 AUTH PLAIN (initial response, RFC 4616) or LOGIN, after TLS. False on failure.
asio::awaitable<bool> Authenticate(SmtpSession& s, const ClientRequest& req, ClientResult& res) {
  const UpstreamAuth& auth = *req.auth;
  if (!MaySendCredentials(res.verdict, req.webpki_required, auth.allow_unverified)) {
    co_await s.Quit();
    co_return AuthFails(res, s, req, "4.7.5",
                        "the connection is not authenticated; credentials not sent");
  }
  const auto mechanism = ChooseMechanism(s.ehlo.ExtensionParams("AUTH"));
  if (!mechanism) {
    co_await s.Quit();
    co_return AuthFails(res, s, req, "4.7.0", "the server offers neither AUTH PLAIN nor LOGIN");
  }
  const auto password = ReadPassword(auth.password_file);
  if (!password) {
    co_await s.Quit();
    co_return AuthFails(res, s, req, "4.3.0", password.error());
  }
  std::vector<std::string> steps;
  if (*mechanism == AuthMechanism::kPlain) {
    steps = {"AUTH PLAIN " + PlainInitialResponse(auth.user, *password)};
  } else {
    steps = {"AUTH LOGIN", EncodeBase64(auth.user), EncodeBase64(*password)};
  }
  for (size_t i = 0; i < steps.size(); ++i) {
    auto reply = co_await s.Command(steps[i], req.timeouts.command);
    if (!reply) {
      co_return FailHost(res, Cause::kSession, "4.4.2",
                         fmt::format("{} during AUTH with {}", reply.error(), s.peer));
    }
    const bool last = i + 1 == steps.size();
    if (reply->code == (last ? 235 : 334)) continue;
    co_await s.Quit();
    co_return AuthFails(res, s, req, "4.7.0", "the server said: " + reply->Text());
  }
  Log(Service::kSmtp).info("authenticated to {} as {}", s.peer, auth.user);
  co_return true;
}

// Connect, greeting, EHLO, STARTTLS as the policy requires, EHLO again. On failure `res` says
// why and the result is null.
asio::awaitable<std::shared_ptr<SmtpSession>> Open(const ClientRequest& req, ClientResult& res) {
  auto s = co_await Connect(req, res);
  if (!s) co_return nullptr;
  // RFC 8314 §3.3: implicit TLS, the handshake first; no STARTTLS after.
  if (req.implicit_tls && !co_await Handshake(*s, req, res)) co_return nullptr;
  if (!co_await Greet(*s, req, res)) co_return nullptr;
  auto ehlo = co_await Ehlo(*s, req, res);
  if (!ehlo) co_return nullptr;
  if (LoopsBack(*s, req, *ehlo, "replied to EHLO with", res)) {
    co_await s->Quit();
    co_return nullptr;
  }
  s->ehlo = std::move(*ehlo);
  s->starttls_offered = res.starttls_offered = req.implicit_tls || s->ehlo.HasExtension("STARTTLS");
  if (req.implicit_tls || req.no_tls) {
    // TLS is up already, or never wanted.
  } else if (!req.plaintext_only && s->starttls_offered) {
    if (!co_await StartTls(*s, req, res)) co_return nullptr;
  } else if (TlsRequired(req)) {
    co_await s->Quit();
    FailHost(res, Cause::kStartTlsNotOffered, "4.7.5",
             fmt::format("TLS is required, but {} does not offer STARTTLS", s->peer));
    co_return nullptr;
  }
  if (req.requiretls && !s->ehlo.HasExtension("REQUIRETLS")) {
    // RFC 8689 §4.2.1 and §5: "REQUIRETLS not supported by server", 5.7.30. Our finding
    // from its EHLO reply, not a reply of the server to the message.
    co_await s->Quit();
    FailHost(res, {Cause::kRequireTlsNotOffered, "5.7.30", "",
                   fmt::format("REQUIRETLS: {} does not offer REQUIRETLS", s->peer),
                   /*permanent=*/true});
    co_return nullptr;
  }
  if (req.auth && !co_await Authenticate(*s, req, res)) co_return nullptr;
  co_return s;
}

enum class After { kReusable, kQuit, kLostBeforeMail };

// RFC 6531 §3.4: a next hop without SMTPUTF8 gets the addresses with their domains in
// A-labels; an address whose local part is not ASCII cannot go there and fails with 5.6.7.
bool Utf8Transaction(const Reply& ehlo, const queue::MessageInfo& m) {
  return m.smtputf8 && ehlo.HasExtension("SMTPUTF8");
}

tl::expected<std::string, std::string> EnvelopeAddress(const std::string& address, bool utf8) {
  if (utf8) return address;
  return dns::ToAsciiAddress(address);
}

ClientResult::Rcpt NeedsUtf8(const SmtpSession& s, const std::string& address,
                             const std::string& why) {
  return {queue::RecipientState::kFailed, "5.6.7",
          fmt::format("{} does not support SMTPUTF8, which <{}> needs ({})", s.peer,
                      queue::Printable(address, 300), why),
          false, Cause::kExtensionMissing};
}

ClientResult::Rcpt FromReply(const Reply& r) {
  return {StateOf(r), DefaultStatus(r), r.Text(), true, Cause::kRemoteReply};
}

// The message cannot go to this hop: every recipient fails alike, before anything is sent.
void FailAll(ClientResult& res, const ClientResult::Rcpt& rcpt) {
  for (auto& rc : res.recipients) rc = rcpt;
}

// The content as this hop can take it: the message's own, or its 7-bit form kept in
// `seven_bit`. Null when the message cannot go there, every recipient failed in `res`.
const std::string* ContentFor(const SmtpSession& s, const ClientRequest& req,
                              std::string& seven_bit, ClientResult& res) {
  const queue::MessageInfo& m = *req.message;
  if (m.smtputf8 && !Utf8Transaction(s.ehlo, m) && HeaderHasUtf8(*req.content)) {
    // As Postfix does: the header cannot be made ASCII here, so the message cannot go there.
    FailAll(res, {queue::RecipientState::kFailed, "5.6.7",
                  fmt::format("{} does not support SMTPUTF8, which the message header needs (it "
                              "contains UTF-8)",
                              s.peer),
                  false, Cause::kExtensionMissing});
    return nullptr;
  }
  // RFC 6152 §3: 8-bit content goes as it is only where 8BITMIME is offered; elsewhere it is
  // converted to 7 bits, or the message is returned (5.6.3, RFC 3463 §3.7) when it cannot be.
  // Whether to convert depends on the octets, not on BODY=: a client's label can be wrong.
  if (s.ehlo.HasExtension("8BITMIME")) return req.content;
  auto converted = ToSevenBit(*req.content);
  if (!converted) {
    FailAll(res, {queue::RecipientState::kFailed, "5.6.3",
                  fmt::format("message has 8-bit content that cannot be converted to 7-bit for {}, "
                              "which does not offer 8BITMIME ({})",
                              s.peer, converted.error()),
                  false, Cause::kExtensionMissing});
    return nullptr;
  }
  if (!*converted) return req.content;
  seven_bit = std::move(**converted);
  Log(Service::kSmtp)
      .info("{}: converted to 7bit for {}, which does not offer 8BITMIME", m.id, s.peer);
  return &seven_bit;
}

// MAIL FROM with the parameters the next hop offers, CRLF-terminated.
std::string MailLine(const Reply& ehlo, const ClientRequest& req, const std::string& sender,
                     size_t size) {
  const queue::MessageInfo& m = *req.message;
  const bool dsn = ehlo.HasExtension("DSN");
  std::string mail = fmt::format("MAIL FROM:<{}>", sender);
  if (ehlo.HasExtension("SIZE")) mail += fmt::format(" SIZE={}", size);
  if (m.body_8bitmime && ehlo.HasExtension("8BITMIME")) mail += " BODY=8BITMIME";
  if (Utf8Transaction(ehlo, m)) mail += " SMTPUTF8";
  if (req.requiretls) mail += " REQUIRETLS";
  if (dsn && m.dsn_ret != queue::DsnRet::kUnspecified) {
    mail += " RET=" + std::string(queue::ToString(m.dsn_ret));
  }
  if (dsn && !m.dsn_envid.empty()) mail += " ENVID=" + Xtext(m.dsn_envid);
  // RFC 4954 §5: passed on to a next hop that offers AUTH, as the server side vouched for it
  // (AUTH=<> when it did not trust the client to assert the mailbox).
  if (m.mail_auth && ehlo.HasExtension("AUTH")) {
    mail += " AUTH=" + (m.mail_auth->empty() ? std::string("<>") : Xtext(*m.mail_auth));
  }
  return mail + "\r\n";
}

// The commands of one transaction, CRLF-terminated, and the content they carry.
struct Envelope {
  std::string mail;
  std::vector<std::string> rcpts;
  std::vector<size_t> sent;  // rcpts[i] is for the message's recipients[sent[i]]
  std::string_view content;
};

// Nullopt when nothing can be sent: the sender or every recipient needs SMTPUTF8 the next hop
// lacks (those recipients failed in `res`).
std::optional<Envelope> BuildEnvelope(const SmtpSession& s, const ClientRequest& req,
                                      const std::string& content, ClientResult& res) {
  const queue::MessageInfo& m = *req.message;
  const bool utf8 = Utf8Transaction(s.ehlo, m);
  const bool dsn = s.ehlo.HasExtension("DSN");
  const auto sender = EnvelopeAddress(m.sender, utf8);
  if (!sender) {
    FailAll(res, NeedsUtf8(s, m.sender, sender.error()));
    return std::nullopt;
  }
  Envelope e{MailLine(s.ehlo, req, *sender, content.size()), {}, {}, content};
  for (size_t k = 0; k < m.recipients.size(); ++k) {
    const auto& r = m.recipients[k];
    const auto address = EnvelopeAddress(r.address, utf8);
    if (!address) {
      res.recipients[k] = NeedsUtf8(s, r.address, address.error());
      continue;
    }
    e.sent.push_back(k);
    std::string line = fmt::format("RCPT TO:<{}>", *address);
    if (dsn && r.notify) line += " NOTIFY=" + queue::NotifyToString(r.notify);
    // RFC 6533 §3: a utf-8 original recipient as unitext where the transaction is SMTPUTF8,
    // else in its 7-bit xtext form.
    if (dsn && !r.orcpt.empty()) line += " ORCPT=" + queue::OrcptParameter(r.orcpt, utf8);
    e.rcpts.push_back(line + "\r\n");
  }
  if (e.rcpts.empty()) return std::nullopt;
  return e;
}

// The connection was lost after MAIL's reply: every recipient sent is deferred.
After Lost(const SmtpSession& s, const Envelope& e, ClientResult& res, const std::string& why,
           const char* stage) {
  const std::string text = fmt::format("{} with {} {}", why, s.peer, stage);
  for (size_t k : e.sent)
    res.recipients[k] = {queue::RecipientState::kDeferred, "4.4.2", text, false, Cause::kSession};
  return After::kQuit;
}

// The reply to each RCPT, sent one by one unless pipelined (then already sent). Nullopt when
// the connection was lost, the recipients deferred in `res`.
asio::awaitable<std::optional<std::vector<Reply>>> RcptReplies(SmtpSession& s,
                                                               const ClientTimeouts& t,
                                                               const Envelope& e, bool pipelining,
                                                               ClientResult& res) {
  std::vector<Reply> replies;
  for (const std::string& line : e.rcpts) {
    if (!pipelining) {
      if (auto wec = co_await s.conn.Write(line, t.command)) {
        Lost(s, e, res, wec.message(), "while sending RCPT");
        co_return std::nullopt;
      }
    }
    auto r = co_await s.reader.Read(t.command);
    if (!r) {
      Lost(s, e, res, r.error(), "after RCPT");
      co_return std::nullopt;
    }
    replies.push_back(std::move(*r));
  }
  co_return replies;
}

// DATA (already sent when pipelined), the message to the `accepted` recipients (indices into
// the message's), and the reply to it for each of them.
asio::awaitable<After> Data(SmtpSession& s, const ClientTimeouts& t, const Envelope& e,
                            const std::vector<size_t>& accepted, ClientResult& res) {
  if (!s.ehlo.HasExtension("PIPELINING")) {
    if (auto wec = co_await s.conn.Write("DATA\r\n", t.command)) {
      co_return Lost(s, e, res, wec.message(), "while sending DATA");
    }
  }
  auto data = co_await s.reader.Read(t.data_init);
  if (!data) co_return Lost(s, e, res, data.error(), "after DATA");
  if (accepted.empty()) co_return After::kQuit;
  if (data->code != 354) {
    NoteRefusal(res, *data);
    for (size_t k : accepted) res.recipients[k] = FromReply(*data);
    co_return After::kQuit;
  }
  const std::vector<std::string_view> stuffed = DotStuff(e.content);
  if (auto wec = co_await s.conn.WritePieces(stuffed, t.data_block)) {
    co_return Lost(s, e, res, wec.message(), "while sending message body");
  }
  auto done = co_await s.reader.Read(t.data_done);
  if (!done) co_return Lost(s, e, res, done.error(), "after end of data");
  NoteRefusal(res, *done);
  for (size_t k : accepted) res.recipients[k] = FromReply(*done);
  co_return After::kReusable;
}

// MAIL, RCPT and DATA, in one write up to DATA where PIPELINING is offered (RFC 2920 §3.1),
// then the message; the replies go into `res`.
asio::awaitable<After> Exchange(SmtpSession& s, const ClientTimeouts& t, const Envelope& e,
                                ClientResult& res) {
  const bool pipelining = s.ehlo.HasExtension("PIPELINING");
  std::string first = e.mail;
  if (pipelining) {
    for (const auto& r : e.rcpts) first += r;
    first += "DATA\r\n";
  }
  if (co_await s.conn.Write(first, t.command)) co_return After::kLostBeforeMail;
  auto mail_reply = co_await s.reader.Read(t.command);
  if (!mail_reply) co_return After::kLostBeforeMail;  // e.g. a cached connection timed out
  std::vector<Reply> rcpt_replies;  // none when MAIL was refused and RCPT not sent
  if (mail_reply->Positive() || pipelining) {
    auto replies = co_await RcptReplies(s, t, e, pipelining, res);
    if (!replies) co_return After::kQuit;
    rcpt_replies = std::move(*replies);
  }
  if (!mail_reply->Positive()) {
    NoteRefusal(res, *mail_reply);
    for (size_t k : e.sent) res.recipients[k] = FromReply(*mail_reply);
    if (pipelining) (void)co_await s.reader.Read(t.data_init);  // the DATA reply, a refusal
    co_return After::kQuit;
  }
  std::vector<size_t> accepted;
  for (size_t i = 0; i < rcpt_replies.size(); ++i) {
    res.recipients[e.sent[i]] = FromReply(rcpt_replies[i]);
    NoteRefusal(res, rcpt_replies[i]);
    if (rcpt_replies[i].Positive()) accepted.push_back(e.sent[i]);
  }
  if (!pipelining && accepted.empty()) co_return After::kReusable;
  co_return co_await Data(s, t, e, accepted, res);
}

// MAIL, RCPT, DATA (pipelined when offered) on an open session; fills res.recipients.
asio::awaitable<After> Transaction(SmtpSession& s, const ClientRequest& req, ClientResult& res) {
  res.remote_dsn = s.ehlo.HasExtension("DSN");
  res.recipients.assign(req.message->recipients.size(), {});
  std::string seven_bit;  // the converted copy, when one was needed
  const std::string* content = ContentFor(s, req, seven_bit, res);
  if (!content) co_return After::kReusable;  // nothing was sent
  const std::optional<Envelope> envelope = BuildEnvelope(s, req, *content, res);
  if (!envelope) co_return After::kReusable;  // nothing was sent
  co_return co_await Exchange(s, req.timeouts, *envelope, res);
}

// Sessions are shared only between deliveries under the same policy to the same host: the key
// holds the address, the host name, the TLS requirement, the MTA-STS checks and, under DANE,
// the base domain, the reference names and the TLSA records.
std::string CacheKey(const ClientRequest& req) {
  std::string key =
      fmt::format("{}|{}|{}|{}|{}|{}|{}", req.ip, req.port, req.mx_host, static_cast<int>(req.tls),
                  req.plaintext_only, req.webpki_check, req.webpki_required);
  if (req.requiretls) key += "|REQUIRETLS";
  // What a route adds: a session made with other credentials, certificate, source or name is
  // not the same session.
  key +=
      fmt::format("|{}|{}|{}|{}|{}|{}|{}|{}|{}", req.route, req.helo_name, req.no_tls,
                  req.implicit_tls, req.client_cert_file.string(), req.auth ? req.auth->user : "",
                  req.source_address, req.source_address6, fmt::join(req.webpki_names, ","));
  if (req.dane) {
    key += "|" + req.dane->base_domain;
    for (const auto& n : req.dane->extra_names) key += "|" + n;
    for (const auto& r : req.dane->records) key += "|" + r.ToString();
  }
  return key;
}

// After a transaction: RSET and back into the cache when the session is clean and the server
// agrees (RFC 5321 §4.1.1.5), otherwise QUIT.
asio::awaitable<void> Finish(const std::shared_ptr<SmtpSession>& s, After after,
                             const ClientRequest& req, ConnectionCache* cache,
                             const std::string& key) {
  if (after == After::kLostBeforeMail) {
    co_await s->conn.Close();
    co_return;
  }
  ++s->transactions;
  if (after == After::kReusable && cache && s->transactions < req.messages_per_connection) {
    auto rset = co_await s->Command("RSET", req.timeouts.command);
    if (rset && rset->Positive()) {
      cache->Put(key, s);
      co_return;
    }
    co_await s->conn.Close();
    co_return;
  }
  co_await s->Quit();
}

}  // namespace

ConnectionCache::ConnectionCache(std::chrono::seconds idle_limit) : idle_limit_(idle_limit) {}
ConnectionCache::~ConnectionCache() = default;

std::shared_ptr<SmtpSession> ConnectionCache::Take(const std::string& key) {
  auto it = idle_.find(key);
  if (it == idle_.end()) return nullptr;
  auto s = std::move(it->second);
  idle_.erase(it);
  Forget(s->site);
  return s;
}

void ConnectionCache::Put(const std::string& key, std::shared_ptr<SmtpSession> s) {
  s->idle_since = std::chrono::steady_clock::now();
  ++idle_sites_[s->site];
  idle_.emplace(key, std::move(s));
}

std::size_t ConnectionCache::IdleCount(const std::string& site) const {
  const auto it = idle_sites_.find(site);
  return it == idle_sites_.end() ? 0 : it->second;
}

void ConnectionCache::Forget(const std::string& site) {
  if (auto it = idle_sites_.find(site); it != idle_sites_.end() && --it->second == 0) {
    idle_sites_.erase(it);
  }
}

void ConnectionCache::Sweep(const asio::any_io_executor& ex, bool all) {
  const auto now = std::chrono::steady_clock::now();
  for (auto it = idle_.begin(); it != idle_.end();) {
    if (all || now - it->second->idle_since >= idle_limit_) {
      auto s = std::move(it->second);
      it = idle_.erase(it);
      Forget(s->site);
      asio::co_spawn(
          ex, [s]() -> asio::awaitable<void> { co_await s->Quit(); }, [](std::exception_ptr) {});
    } else {
      ++it;
    }
  }
}

std::int64_t NewSessionId() {
  // The io thread's alone; a probe runs on its own thread, hence thread_local.
  thread_local std::mt19937_64 random{std::random_device{}()};
  return static_cast<std::int64_t>(random() >> 1) | 1;  // positive, never 0 ("not known")
}

asio::awaitable<ClientResult> DeliverOverSmtp(const ClientRequest& req, ConnectionCache* cache) {
  using SteadyClock = std::chrono::steady_clock;
  ClientResult res;
  const std::string key = CacheKey(req);
  std::shared_ptr<SmtpSession> s;
  if (cache && req.message) s = cache->Take(key);
  if (s) {
    res.starttls_offered = s->starttls_offered;
    res.verdict = s->verdict;
    res.local_ip = s->local_ip;
    res.session = s->session;
    const auto started = SteadyClock::now();
    const After after = co_await Transaction(*s, req, res);
    res.transfer_time = SteadyClock::now() - started;
    if (after != After::kLostBeforeMail) {
      Log(Service::kSmtp).info("reused the cached connection to {}", s->peer);
      co_await Finish(s, after, req, cache, key);
      co_return res;
    }
    // The server let the idle connection go: start afresh.
    co_await s->conn.Close();
    res = ClientResult{};
  }
  const auto opening = SteadyClock::now();
  res.session = NewSessionId();
  s = co_await Open(req, res);
  if (s) s->site = req.site;
  res.connect_time = SteadyClock::now() - opening;
  if (!s) co_return res;
  s->session = res.session;
  if (!req.message) {  // a probe: the TLS facts are all we wanted
    co_await s->Quit();
    co_return res;
  }
  const auto sending = SteadyClock::now();
  const After after = co_await Transaction(*s, req, res);
  res.transfer_time = SteadyClock::now() - sending;
  if (after == After::kLostBeforeMail) {
    const std::string text = fmt::format("lost connection with {} while sending MAIL", s->peer);
    res.recipients.assign(req.message->recipients.size(), {queue::RecipientState::kDeferred,
                                                           "4.4.2", text, false, Cause::kSession});
  }
  co_await Finish(s, after, req, cache, key);
  co_return res;
}

}  // namespace danerelay::relay
