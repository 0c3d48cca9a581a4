#pragma once
// The SMTP client side of one delivery: one connection to one MX address, EHLO, STARTTLS (as
// the DANE policy requires), MAIL/RCPT/DATA pipelined when offered, QUIT.
//
// It reports what happened and does not decide what it means for the queue, except for the
// per-recipient replies the server gave: the delivery agent maps host failures onto the policy.
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "queue/failure.hpp"
#include "queue/message.hpp"
#include "relay/options.hpp"
#include "relay/routes.hpp"
#include "relay/smtp/smtp_reply.hpp"
#include "tls/client.hpp"

namespace asio::ssl {
class context;
}

namespace danerelay::relay {

struct ClientRequest {
  std::string ip;
  std::uint16_t port = 25;
  std::string mx_host;    // for logs and the SNI when not under DANE
  std::string helo_name;  // our host name
  tls::Requirement tls = tls::Requirement::kMay;
  std::optional<tls::DaneSetup> dane;  // with TlsRequirement::kDane
  // MTA-STS (RFC 8461 §4.2): check the certificate under WebPKI for mx_host ("Trusted" then
  // means valid for it); `webpki_required` (mode enforce): anything else fails the host.
  bool webpki_check = false;
  bool webpki_required = false;
  // RFC 8689 §4.2.1: the next hop must offer REQUIRETLS (else 5.7.30, §5), and MAIL carries
  // it on.
  bool requiretls = false;
  // The names a WebPKI check accepts (empty: mx_host), and the cause a failed check is
  // recorded with (kStsNotTrusted under MTA-STS, kTlsPolicyNotVerified under the operator's
  // "verify").
  std::vector<std::string> webpki_names;
  queue::Cause webpki_cause = queue::Cause::kStsNotTrusted;
  bool no_tls = false;        // TLS policy "none": never STARTTLS
  bool implicit_tls = false;  // RFC 8314: the handshake before the greeting
  std::filesystem::path client_cert_file, client_key_file;  // read at each connection
  // SMTP AUTH (RFC 4954) after TLS, only when the connection is authenticated (or the route
  // allows it without).
  std::optional<UpstreamAuth> auth;
  std::string source_address, source_address6;  // "": the kernel's choice
  std::string route;                            // the route's key, for logs ("" for MX delivery)
  std::shared_ptr<asio::ssl::context> tls_context;
  bool plaintext_only = false;  // the retry after a failed opportunistic handshake
  // Envelope and recipients to deliver; nullptr probes: QUIT right after the TLS step
  // (dane-check).
  const queue::MessageInfo* message = nullptr;
  const std::string* content = nullptr;
  ClientTimeouts timeouts;
  std::uint32_t messages_per_connection = 100;  // then QUIT instead of back into the cache
  std::string site;  // where it goes (relay/delivery/sites.hpp), for ConnectionCache::HasIdle
};

struct ClientResult {
  // The host as a whole failed before any recipient got an answer (connect, greeting, STARTTLS,
  // handshake, DANE): the agent tries the next address or MX.
  bool host_failed = false;
  // For a host failure: why (status "4.4.1", "4.7.5", ...; the text in plain words, with the
  // server's reply if any).
  queue::Failure failure;
  bool retry_plaintext = false;  // opportunistic TLS handshake failed: try once in plain text
  bool loops_back = false;       // the server greeted us, or answered EHLO, with our own host name
  bool starttls_offered = false;
  std::optional<tls::Verdict> verdict;
  std::string local_ip;  // our end of the connection, once connected (RFC 8460 sending-mta-ip)
  // The connection's session id (NewSessionId), the same for every message sent over a cached
  // connection: TLS-RPT counts sessions by it (RFC 8460 §4.4).
  std::int64_t session = 0;
  bool remote_dsn = false;  // the server offered DSN
  // Where the time went (Postfix's delays=.../c/d): connecting, greeting, EHLO and TLS (zero
  // on a cached connection), then MAIL through the reply to the data.
  std::chrono::steady_clock::duration connect_time{};
  std::chrono::steady_clock::duration transfer_time{};
  // The server's negative replies (greeting, EHLO, STARTTLS, MAIL, RCPT, DATA, end of data) as
  // it said them (Reply::Text()), the first kMaxRefusals: [[shaping.on_reply]] reads them.
  static constexpr std::size_t kMaxRefusals = 8;
  std::vector<std::string> refusals;
  // With !host_failed: one entry per recipient of the request, in order.
  struct Rcpt {
    queue::RecipientState state = queue::RecipientState::kDeferred;
    std::string status;
    std::string reply;
    bool from_remote = false;  // `reply` is the server's reply, not our account (a lost connection)
    queue::Cause cause = queue::Cause::kNone;  // for a failure or deferral
  };
  std::vector<Rcpt> recipients;
};

struct SmtpSession;

// Idle SMTP sessions kept between deliveries, as Postfix's connection cache does: the next
// message to the same host under the same TLS/DANE policy goes over the same connection
// (MAIL after RSET), without a new handshake. Used on the io thread only.
class ConnectionCache {
 public:
  explicit ConnectionCache(std::chrono::seconds idle_limit);
  ~ConnectionCache();
  std::shared_ptr<SmtpSession> Take(const std::string& key);
  void Put(const std::string& key, std::shared_ptr<SmtpSession> session);
  // QUITs sessions idle for longer than the limit (or all of them).
  void Sweep(const asio::any_io_executor& ex, bool all = false);
  // Idle sessions to `site` (ClientRequest::site) kept: so many deliveries there may need no
  // new connection ([shaping] connection_rate).
  std::size_t IdleCount(const std::string& site) const;

 private:
  void Forget(const std::string& site);
  std::chrono::seconds idle_limit_;
  std::multimap<std::string, std::shared_ptr<SmtpSession>> idle_;
  std::map<std::string, std::size_t> idle_sites_;  // idle sessions per site
};

// With a cache, a clean session is kept for the next message instead of QUIT.
asio::awaitable<ClientResult> DeliverOverSmtp(const ClientRequest& request,
                                              ConnectionCache* cache = nullptr);

// A new SMTP session id for the attempts table: random, positive, unique in practice across
// restarts (a report covers a day, whatever the daemon did in it).
std::int64_t NewSessionId();

// RFC 5321 §4.5.2: a leading "." on a line is doubled, and the data ends with CRLF "." CRLF.
// The pieces to send, in order: slices of `content` with the added dots and the terminator
// between them, so a message is sent without being copied.
std::vector<std::string_view> DotStuff(std::string_view content);

// The RFC 8460 §4.3 result type of a certificate that failed its check: the more specific
// certificate-host-mismatch or certificate-expired where OpenSSL said so, else the cause's type.
std::string CertificateResultType(const tls::Verdict& verdict, queue::Cause cause);

// True when the first word of the reply's first line (the host name in a greeting or an EHLO
// reply, RFC 5321 §4.2) is `my_name`, compared case-insensitively: the peer is ourselves.
bool NamesMe(const Reply& reply, std::string_view my_name);

// True when the header section (up to the first empty line) holds a byte outside ASCII: such a
// message, submitted with SMTPUTF8, needs SMTPUTF8 at the next hop (RFC 6531 §3.2).
bool HeaderHasUtf8(std::string_view content);

}  // namespace danerelay::relay
