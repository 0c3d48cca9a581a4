#include "relay/inbound/smtp_server.hpp"

#include <spdlog/spdlog.h>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/ssl.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <exception>
#include <list>
#include <unordered_map>

#include "relay/daemon/logging.hpp"
#include "relay/daemon/metrics.hpp"
#include "relay/dkim/slot.hpp"
#include "relay/inbound/accounts.hpp"
#include "relay/inbound/archive.hpp"
#include "relay/inbound/client_limits.hpp"
#include "relay/inbound/quota_gate.hpp"
#include "relay/inbound/sender_checks.hpp"
#include "relay/io/connection.hpp"
#include "relay/io/store_bridge.hpp"
#include "relay/smtp/received.hpp"
#include "relay/smtp/server_session.hpp"

namespace danerelay::relay {
namespace {

using asio::ip::tcp;

// Every line of the SMTP server is smtpd's (relay/daemon/logging.hpp).
spdlog::logger& Smtpd() { return Log(Service::kSmtpd); }

std::string Endpoint(const tcp::endpoint& ep) {
  return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
}

// A user name as the client sent it, safe for a log line.
std::string Printable(std::string_view s) { return queue::Printable(s, 256); }

}  // namespace

struct SmtpServer::Impl : std::enable_shared_from_this<Impl> {
  asio::io_context& io;
  ServerOptions options;
  queue::Committer& committer;
  queue::QueueIdGenerator& ids;

  struct Listener {
    ListenerOptions options;
    std::shared_ptr<asio::ssl::context> tls;
    std::unique_ptr<tcp::acceptor> acceptor;
    bool closed = false;  // removed by a reload: its Accept loop ends
  };
  // Shared with their Accept loops and sessions, so that a reload may drop one.
  std::list<std::shared_ptr<Listener>> listeners;
  // Connections per client: trusted ones by address, others by ClientGroup.
  std::unordered_map<std::string, std::uint32_t> per_client;
  ConnectionRate connection_rate;  // clients outside trusted_networks, per ClientGroup
  std::uint32_t total = 0;
  std::uint32_t untrusted = 0;  // of `total`, clients outside trusted_networks
  ByteBudget budget{options.limits.max_inflight_bytes};
  bool stopping = false;
  bool data_grace_over = false;  // shutdown: sessions in DATA are not waited for any longer
  // Open sessions, so that a shutdown can wake the ones waiting for a command.
  struct Live {
    ServerSession* session;
    Connection* conn;
  };
  std::list<Live> live;
  std::unique_ptr<asio::steady_timer> grace;

  // Wakes every session that waits for input and may be cut short now.
  void WakeForShutdown() {
    for (const auto& l : live) {
      if (!l.session->InData() || data_grace_over) {
        std::error_code ec;
        l.conn->socket.cancel(ec);
      }
    }
  }
  std::function<void()> on_queued;
  // AUTH: the accounts (null: no AUTH), the sender map, failures per client group (attempts
  // being verified included), and one thread
  // for the deliberately slow password hashes, so they never hold up the protocol thread.
  std::shared_ptr<const Accounts> accounts;
  std::shared_ptr<const std::map<std::string, std::vector<std::string>>> senders;
  struct Failures {
    std::uint32_t count = 0;
    std::chrono::steady_clock::time_point since;
  };
  std::unordered_map<std::string, Failures> auth_failures;
  asio::thread_pool verifier{1};
  dns::Resolver& resolver;
  std::shared_ptr<const SenderChecks> sender_checks;  // replaced whole on reload
  std::shared_ptr<QuotaGate> quotas;                  // [quotas]: one for every session

  Impl(asio::io_context& i, ServerOptions o, queue::Committer& c, queue::QueueIdGenerator& g,
       dns::Resolver& r)
      : io(i),
        options(std::move(o)),
        committer(c),
        ids(g),
        resolver(r),
        quotas(std::make_shared<QuotaGate>(i, c, options.quotas)) {}

  tl::expected<void, std::string> LoadSenderChecks(const SenderCheckOptions& o) {
    auto checks = SenderChecks::Make(resolver, o, options.hostname);
    if (!checks) return tl::unexpected(checks.error());
    sender_checks = std::make_shared<const SenderChecks>(std::move(*checks));
    return {};
  }
  ~Impl() { verifier.join(); }

  // [dkim]: the daemon's signer (null in tests that do not sign).
  const dkim::SignerSlot* dkim = nullptr;
  // Signs the message before it is committed, so every delivery attempt sends these bytes.
  // Signing needs no I/O: it runs here, on the protocol thread (an RSA-2048 signature is ~1 ms).
  std::optional<dkim::SignResult> Sign(queue::NewMessage& message, const dkim::Submission& from) {
    if (!dkim) return std::nullopt;
    return dkim->SignSubmission(message.content, from);
  }

  // [auth]: loads the users file when one is configured.
  tl::expected<void, std::string> LoadAuth(const AuthOptions& auth) {
    std::shared_ptr<const Accounts> loaded;
    if (!auth.users_file.empty()) {
      auto a = Accounts::Load(auth.users_file);
      if (!a) return tl::unexpected(a.error());
      loaded = std::make_shared<const Accounts>(std::move(*a));
    }
    accounts = std::move(loaded);
    senders = std::make_shared<const std::map<std::string, std::vector<std::string>>>(auth.senders);
    return {};
  }

  // Checks a password on the verifier thread; resumes on the caller's executor. References,
  // copied into the job: the caller awaits at once, and GCC 12 mishandles by-value parameter
  // temporaries that live across a co_await (see dns/resolver.hpp).
  asio::awaitable<bool> Verify(const std::shared_ptr<const Accounts>& accts,
                               const std::string& user, const std::string& password) {
    const auto check = [accts, user, password] { return accts->Verify(user, password); };
    co_return co_await OnPool(verifier, check);
  }

  // The failures of `group` within the window (older ones are forgotten, and swept out of the
  // map when it grows, so clients from many addresses cannot make it grow without bound).
  Failures& FailuresOf(const std::string& group) {
    const auto now = std::chrono::steady_clock::now();
    if (auth_failures.size() > 10000) {
      std::erase_if(auth_failures, [&](const auto& entry) {
        return now - entry.second.since > options.auth.failure_window;
      });
    }
    Failures& f = auth_failures[group];
    if (f.count == 0 || now - f.since > options.auth.failure_window) f = Failures{0, now};
    return f;
  }

  // One AUTH exchange's credentials: verified off the protocol thread; a failure is logged
  // (user name, never the password), answered after a delay that grows with the client's
  // failures, and past [auth] max_failures within the window the client is disconnected.
  // Failures count per client group ([auth] ipv4_prefix, ipv6_prefix), and an attempt counts
  // as a failure from the moment it arrives until its password is found right: checking the
  // count first and raising it after the (slow) hash let parallel sessions all pass the check
  // and have any number of passwords verified.
  asio::awaitable<void> Authenticate(ServerSession& session, const std::string& client,
                                     const std::string& client_ip) {
    const std::string user = session.AuthUser();
    std::string password = session.TakePassword();
    const std::string group =
        ClientGroup(client_ip, options.auth.ipv4_prefix, options.auth.ipv6_prefix);
    {
      Failures& reserved = FailuresOf(group);
      if (reserved.count >= options.auth.max_failures) {
        Smtpd().warn(
            "{}: SASL {} authentication failed: too many failed AUTH attempts; "
            "user=<{}> not checked",
            client, session.AuthMechanism(), Printable(user));
        session.Abort("too many failed authentication attempts");
        co_return;
      }
      ++reserved.count;  // `reserved` may go while we wait: looked up again below
    }
    const auto accts = accounts;  // a reload may replace them while we wait
    const bool ok = accts && co_await Verify(accts, user, password);
    password.assign(password.size(), '\0');
    if (ok) {
      // Gives the reserved failure back (unless the window has started over meanwhile).
      if (Failures& f = FailuresOf(group); f.count > 0) --f.count;
      Smtpd().info("{}: sasl_username={}", client, user);
      session.AuthDone(true);
      co_return;
    }
    Failures& f = FailuresOf(group);
    if (f.count == 0) f.count = 1;  // the window started over while we verified
    // Postfix's words, which fail2ban's postfix filter (mode auth) matches.
    Smtpd().warn("{}: SASL {} authentication failed: user=<{}> ({} of {} allowed)", client,
                 session.AuthMechanism(), Printable(user), f.count, options.auth.max_failures);
    const std::uint32_t count = f.count;  // `f` may go while we wait
    asio::steady_timer pause(io, std::chrono::seconds(std::min<std::uint32_t>(count, 5)));
    co_await pause.async_wait(kUseTuple);
    if (count >= options.auth.max_failures) {
      session.Abort("too many failed authentication attempts");
    } else {
      session.AuthDone(false);
    }
  }

  // Hands the message to the group committer and resumes when its commit has returned.
  // `message` is moved from. A reference, not a by-value parameter: see store_bridge.hpp.
  asio::awaitable<tl::expected<void, queue::StoreError>> Enqueue(queue::NewMessage& message) {
    co_return co_await OnStoreSubmit(committer, message);
  }

  static std::string Name(const ListenerOptions& lo) {
    return lo.address + ":" + std::to_string(lo.port);
  }

  // The TLS context a listener's settings call for (none for a plain one).
  static tl::expected<std::shared_ptr<asio::ssl::context>, std::string> TlsFor(
      const ListenerOptions& lo) {
    if (!lo.starttls && !lo.implicit_tls) return nullptr;
    return tls::MakeServerContext(lo.tls);
  }

  void LogListening(const ListenerOptions& lo, std::string_view prefix) const {
    spdlog::info("{}listening on {}{}{}{}", prefix, Name(lo),
                 lo.starttls       ? " (STARTTLS)"
                 : lo.implicit_tls ? " (implicit TLS)"
                                   : "",
                 lo.require_tls ? " (TLS required)" : "",
                 lo.auth && !options.auth.users_file.empty() ? " (AUTH)" : "");
  }

  // A bound, listening socket with its TLS context; not yet accepting.
  tl::expected<std::shared_ptr<Listener>, std::string> Open(const ListenerOptions& lo) {
    auto l = std::make_shared<Listener>();
    l->options = lo;
    auto ctx = TlsFor(lo);
    if (!ctx) return tl::unexpected("listener " + Name(lo) + ": " + ctx.error());
    l->tls = std::move(*ctx);
    std::error_code ec;
    const auto address = asio::ip::make_address(lo.address, ec);
    if (ec) return tl::unexpected("listener " + Name(lo) + ": not an IP address");
    const tcp::endpoint ep(address, lo.port);
    l->acceptor = std::make_unique<tcp::acceptor>(io);
    l->acceptor->open(ep.protocol(), ec);
    if (!ec) l->acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) l->acceptor->bind(ep, ec);
    if (!ec) l->acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return tl::unexpected("listener " + Name(lo) + ": " + ec.message());
    return l;
  }

  asio::awaitable<void> Accept(std::shared_ptr<Listener> l) {
    auto self = shared_from_this();
    Listener& listener = *l;
    for (;;) {
      auto [ec, socket] = co_await listener.acceptor->async_accept(kUseTuple);
      if (stopping || listener.closed) co_return;
      if (ec) {
        // Out of file descriptors (EMFILE, ENFILE) or memory: the pending connection stays in
        // the backlog, so retrying at once would spin. Pause, and say so once per pause rather
        // than once per try.
        Smtpd().warn("accept on {}:{}: {}; pausing new connections for 1s ({} open)",
                     listener.options.address, listener.options.port, ec.message(), total);
        asio::steady_timer pause(io, std::chrono::seconds(1));
        co_await pause.async_wait(kUseTuple);
        if (stopping || listener.closed) co_return;
        continue;
      }
      asio::co_spawn(io, Serve(std::move(socket), l), LogIfBug(Service::kSmtpd, "an SMTP session"));
    }
  }

  // Who is connecting, as the limits and the logs see them.
  struct Client {
    std::string ip;        // an IPv4-mapped IPv6 address in its IPv4 form
    std::string name;      // "unknown[address]:port", as the log lines name it
    bool trusted = false;  // in trusted_networks
    std::string key;       // what its connections are counted under (per_client, the rate)
  };

  Client ClientAt(const tcp::endpoint& peer) const {
    Client c;
    c.ip = peer.address().is_v6() && peer.address().to_v6().is_v4_mapped()
               ? asio::ip::make_address_v4(asio::ip::v4_mapped, peer.address().to_v6()).to_string()
               : peer.address().to_string();
    c.name = "unknown" + Endpoint(peer);
    for (const auto& net : options.trusted_networks) c.trusted = c.trusted || net.Contains(c.ip);
    c.key = c.trusted ? c.ip : ClientGroup(c.ip, 32, options.limits.client_ipv6_prefix);
    return c;
  }

  // Connection limits (Postfix: anvil's smtpd_client_connection_count_limit and
  // smtpd_client_connection_rate_limit). Clients outside trusted_networks have a share of
  // their own, a smaller one each, counted per /64 for IPv6 (one site's share), and a rate,
  // so that a few addresses can never lock the servers or the other AUTH clients out.
  // Admitted: the connection is counted (Release counts it out) and there is no reply.
  // Refused: the limit is logged and the 421 to send returned.
  std::optional<std::string> Admit(const Client& c) {
    const std::uint32_t per_client_limit =
        c.trusted ? options.limits.max_connections_per_client
                  : options.limits.max_untrusted_connections_per_client;
    const std::uint32_t rate = c.trusted || options.limits.max_connection_rate == 0
                                   ? 0
                                   : connection_rate.Admit(c.key, std::chrono::steady_clock::now());
    std::uint32_t& mine = per_client[c.key];
    const char* limit = rate > options.limits.max_connection_rate ? "rate"
                        : total >= options.limits.max_connections ? "in total"
                        : mine >= per_client_limit                ? "per client"
                        : !c.trusted && untrusted >= options.limits.max_untrusted_connections
                            ? "for untrusted clients"
                            : nullptr;
    if (!limit) {
      ++total;
      ++mine;
      if (!c.trusted) ++untrusted;
      return std::nullopt;
    }
    const std::string_view which(limit);
    const bool per_ip = which == "per client" || which == "rate";
    if (which == "rate") {
      // As Postfix's anvil words it, for log tools that know that line.
      Smtpd().warn("connection rate limit exceeded: {} from {} for service smtp", rate, c.name);
    } else {
      Smtpd().warn("connection limit reached ({}) for {}", limit, c.name);
    }
    Metrics::Get().Add("danerelay_smtpd_rejects_total", "command=\"CONNECT\"");
    return fmt::format("421 4.7.0 {} Error: too many connections{}\r\n", options.hostname,
                       per_ip ? " from " + c.ip : "");
  }

  // Sends a client that Admit refused its 421, and drops the empty count Admit made for it.
  asio::awaitable<void> Refuse(Connection& conn, const Client& c, const std::string& reply) {
    co_await conn.Write(reply, std::chrono::seconds(10));
    // Looked up again: other sessions of this client may have come and gone (and erased the
    // entry) while we waited.
    if (auto it = per_client.find(c.key); it != per_client.end() && it->second == 0) {
      per_client.erase(it);
    }
  }

  // Counts an admitted connection out again.
  void Release(const Client& c) {
    --total;
    if (!c.trusted) --untrusted;
    if (--per_client[c.key] == 0) per_client.erase(c.key);
  }

  // The session's settings, from the server's options, the listener's and the client.
  SessionParams ParamsFor(const Listener& listener, const Client& c) {
    SessionParams params;
    params.hostname = options.hostname;
    params.limits = options.limits;
    params.starttls_offered = listener.tls != nullptr && listener.options.starttls;
    params.auth_offered = listener.options.auth && accounts != nullptr;
    params.require_tls = listener.options.require_tls;
    params.hide_auth = options.privacy.hide_auth;
    params.hide_trusted = options.privacy.hide_trusted;
    params.may_send_as = [map = senders](std::string_view user, std::string_view sender) {
      return MaySendAs(*map, user, sender);
    };
    params.check_sender =
        sender_checks->enabled() && !(c.trusted && sender_checks->exempt_trusted());
    params.trusted = c.trusted;
    params.client_address = c.ip;
    params.next_queue_id = [this] { return ids.Next(queue::Clock::now()); };
    params.now = [] { return queue::Clock::now(); };
    params.budget = &budget;
    params.quota = [gate = quotas, ip = c.ip, trusted = c.trusted](
                       std::string_view user, std::string_view sender, bool recipient) {
      return gate->Check({std::string(user), ip, trusted, std::string(sender)}, recipient);
    };
    return params;
  }

  // The server's side of a TLS handshake, after STARTTLS (RFC 3207 §4) or from the first byte
  // on an implicit-TLS listener (RFC 8314 §3). On success the session starts over inside TLS.
  asio::awaitable<std::error_code> Handshake(Connection& conn, asio::ssl::context& ctx,
                                             ServerSession& session, const Client& c) {
    const std::error_code ec = co_await conn.StartTls(ctx, asio::ssl::stream_base::server,
                                                      options.limits.command_timeout, [](auto*) {});
    if (ec) {
      Smtpd().warn("SSL_accept error from {}: {}", c.name, ec.message());
      co_return ec;
    }
    const std::string description = tls::DescribeSession(conn.tls->native_handle());
    Smtpd().info("TLS connection established from {}: {}", c.name, description);
    session.TlsStarted(description);
    co_return std::error_code{};
  }

  // One accepted connection: the limits, the session, and the counts and log lines at its end.
  asio::awaitable<void> Serve(tcp::socket socket, std::shared_ptr<Listener> l) {
    auto self = shared_from_this();
    std::error_code ec;
    const tcp::endpoint peer = socket.remote_endpoint(ec);
    if (ec) co_return;
    const Client client = ClientAt(peer);
    Connection conn(std::move(socket));
    const std::optional<std::string> refusal = Admit(client);
    if (refusal) {
      co_await Refuse(conn, client, *refusal);
      co_return;
    }
    Smtpd().info("connect from {}", client.name);
    Metrics::Get().Add("danerelay_smtpd_connections_total");
    // The listener's settings are read before the first co_await below; its TLS context is
    // held for the session, since a reload may replace the listener's.
    const std::shared_ptr<asio::ssl::context> tls_ctx = l->tls;
    const bool implicit_tls = l->options.implicit_tls;
    ServerSession session(ParamsFor(*l, client));
    const auto me = live.insert(live.end(), Live{&session, &conn});
    bool serve = true;  // false: an implicit-TLS handshake failed, there is nobody to talk to
    if (implicit_tls) {
      // RFC 8314 §3: TLS from the first byte, then the greeting inside it.
      const std::error_code hs_ec = co_await Handshake(conn, *tls_ctx, session, client);
      serve = !hs_ec;
    }
    if (serve) {
      session.Start();
      co_await Converse(conn, session, client, tls_ctx.get());
    }
    co_await conn.Close();
    live.erase(me);
    Smtpd().info("disconnect from {} {}", client.name, session.CommandStats());
    Release(client);
  }

  // The session loop: carries out what the session asks for (ServerSession::Next) until it
  // asks for the end or the connection fails. `tls_ctx`: for STARTTLS, which the session
  // offers only when there is one.
  asio::awaitable<void> Converse(Connection& conn, ServerSession& session, const Client& client,
                                 asio::ssl::context* tls_ctx) {
    const auto write_timeout = options.limits.command_timeout;
    std::vector<char> buf(16384);
    auto lost = [&](std::error_code why) {
      Smtpd().info("lost connection after {} from {}: {}", session.LastCommand(), client.name,
                   why.message());
    };
    std::error_code ec;
    for (;;) {
      const auto action = session.Next();
      for (const auto& reject : session.TakeEvents()) {
        Smtpd().info("{}", reject.log_line);
        Metrics::Get().CountReject(reject.command);
      }
      if (action == ServerSession::Action::kEnqueue) {
        co_await QueueMessage(session, client);
        continue;
      }
      const std::string out = session.TakeOutput();
      if (!out.empty() && (ec = co_await conn.Write(out, write_timeout))) {
        lost(ec);
        co_return;
      }
      if (action == ServerSession::Action::kClose) co_return;
      if (action == ServerSession::Action::kAuthenticate) {
        co_await Authenticate(session, client.name, client.ip);
        continue;
      }
      if (action == ServerSession::Action::kCheckSender) {
        const auto checks = sender_checks;  // a reload may replace them while we wait
        const std::string sender = session.SenderToCheck();
        const std::optional<Refusal> refusal = co_await checks->Check(sender);
        session.SenderChecked(refusal);
        continue;
      }
      if (action == ServerSession::Action::kStartTls) {
        if ((ec = co_await Handshake(conn, *tls_ctx, session, client))) {
          lost(ec);
          co_return;
        }
        continue;
      }
      if (stopping && (!session.InData() || data_grace_over)) {
        session.Abort("service shutting down", "4.3.2");
        continue;
      }
      const auto due = session.ReadDeadline(Deadline::Clock::now());
      auto [read_ec, n] = co_await conn.ReadSomeUntil(buf.data(), buf.size(), due);
      if (read_ec == asio::error::timed_out) {
        Smtpd().info("timeout after {} from {}", session.CommandStats(), client.name);
        session.TimedOut(Deadline::Clock::now());
        continue;
      }
      if (read_ec == asio::error::operation_aborted && stopping) continue;  // 421 above
      if (read_ec) {
        lost(read_ec);  // the client went away without QUIT
        co_return;
      }
      session.Feed(std::string_view(buf.data(), n));
    }
  }

  // Hands the message the session has received to the queue, and the queue's answer back to
  // the session.
  asio::awaitable<void> QueueMessage(ServerSession& session, const Client& client) {
    queue::NewMessage message = session.TakeMessage();
    const std::string id = message.id, sender = message.sender, auth_user = message.auth_user;
    const std::string message_id =
        queue::Printable(queue::HeaderValue(message.content, "Message-ID"), 250);
    RemoveHeaderFields(message.content, options.privacy.remove_headers);
    AddArchiveRecipients(message, options.archive);
    const auto signature = Sign(message, {!auth_user.empty(), client.trusted, client.ip, auth_user,
                                          [map = senders, user = auth_user](std::string_view from) {
                                            return !map || MaySendAs(*map, user, from);
                                          }});
    if (signature && signature->outcome == dkim::Outcome::kError) {
      // As OpenDKIM's default for an internal error: the client keeps the message and tries
      // again; sent unsigned, it could fail DMARC at the receiver.
      dkim::Report(id, *signature);
      Smtpd().warn("{}: reject: 451 4.3.0 DKIM signing failed; from=<{}>", id, Printable(sender));
      session.EnqueueRefused("Error: DKIM signing failed, try again later");
      co_return;
    }
    const size_t size = message.content.size(), nrcpt = message.recipients.size();
    auto stored = co_await Enqueue(message);
    if (!stored) {
      Smtpd().error("{}: queue write failed, client={}: {}", id, client.name,
                    stored.error().message);
      session.EnqueueDone(false);
      co_return;
    }
    // Postfix's three lines of a received message, by the programs that write them:
    // pflogsumm counts "client=" from smtpd as received, and takes the size from qmgr.
    if (auth_user.empty()) {
      Smtpd().info("{}: client={}", id, client.name);
    } else {
      Smtpd().info("{}: client={}, sasl_method={}, sasl_username={}", id, client.name,
                   session.AuthMechanism(), Printable(auth_user));
    }
    Log(Service::kCleanup).info("{}: message-id={}", id, message_id.empty() ? "<>" : message_id);
    if (signature) dkim::Report(id, *signature);
    Log(Service::kQmgr)
        .info("{}: from=<{}>, size={}, nrcpt={} (queue active)", id, sender, size, nrcpt);
    Metrics::Get().Add("danerelay_messages_accepted_total");
    session.EnqueueDone(true);
    if (on_queued) on_queued();
  }
};

SmtpServer::SmtpServer(asio::io_context& io, ServerOptions options, queue::Committer& committer,
                       queue::QueueIdGenerator& ids, dns::Resolver& resolver)
    : impl_(std::make_shared<Impl>(io, std::move(options), committer, ids, resolver)) {}

SmtpServer::~SmtpServer() { Stop(); }

void SmtpServer::UseDkim(const dkim::SignerSlot* slot) { impl_->dkim = slot; }

void SmtpServer::OnQueued(std::function<void()> callback) {
  impl_->on_queued = std::move(callback);
}

tl::expected<void, std::string> SmtpServer::Start() {
  if (auto auth = impl_->LoadAuth(impl_->options.auth); !auth) {
    return tl::unexpected("[auth] users_file " + auth.error());
  }
  if (auto checks = impl_->LoadSenderChecks(impl_->options.sender_checks); !checks) {
    return tl::unexpected("[sender_checks] allow_list " + checks.error());
  }
  for (const auto& lo : impl_->options.listeners) {
    auto l = impl_->Open(lo);
    if (!l) return tl::unexpected(l.error());
    impl_->listeners.push_back(std::move(*l));
    impl_->LogListening(lo, "");
  }
  impl_->quotas->Start();
  for (auto& l : impl_->listeners) {
    asio::co_spawn(impl_->io, impl_->Accept(l), LogIfBug(Service::kSmtpd, "a listener"));
  }
  return {};
}

void SmtpServer::Reload(const ServerOptions& options) {
  auto& current = impl_->options;
  if (auto auth = impl_->LoadAuth(options.auth); !auth) {
    spdlog::warn("reload: keeping the old AUTH accounts: {}", auth.error());
  }
  if (auto checks = impl_->LoadSenderChecks(options.sender_checks); !checks) {
    spdlog::warn("reload: keeping the old sender checks: {}", checks.error());
  }
  current = options;
  impl_->quotas->Reload(options.quotas);
  impl_->budget.SetLimit(options.limits.max_inflight_bytes);
  if (impl_->stopping) return;
  // Listeners by address and port. One kept: its settings and TLS context are replaced (the
  // certificate and key read again, a renewed certificate under the same name too), sessions
  // under way keep theirs. One gone: its socket is closed first (a new one may want its port
  // under another address), its sessions go on. One new: bound now (a port below 1024 needs
  // root or CAP_NET_BIND_SERVICE, which systemd's unit grants).
  auto& listeners = impl_->listeners;
  std::list<std::shared_ptr<Impl::Listener>> kept;
  std::vector<const ListenerOptions*> added;
  for (const auto& lo : options.listeners) {
    const auto same = [&](const auto& l) {
      return l->options.address == lo.address && l->options.port == lo.port;
    };
    const auto it = std::find_if(listeners.begin(), listeners.end(), same);
    if (it == listeners.end()) {
      added.push_back(&lo);
      continue;
    }
    auto ctx = Impl::TlsFor(lo);
    if (!ctx) {
      spdlog::warn("reload: listener {}: {}; it keeps its old certificate and settings",
                   Impl::Name(lo), ctx.error());
    } else {
      (*it)->tls = std::move(*ctx);
      (*it)->options = lo;
    }
    kept.splice(kept.end(), listeners, it);
  }
  for (auto& gone : listeners) {
    spdlog::info("reload: no longer listening on {}", Impl::Name(gone->options));
    gone->closed = true;
    std::error_code ec;
    gone->acceptor->close(ec);
  }
  listeners = std::move(kept);
  for (const ListenerOptions* lo : added) {
    auto opened = impl_->Open(*lo);
    if (!opened) {
      spdlog::warn("reload: {}; not listening there (a restart will try again)", opened.error());
      continue;
    }
    impl_->LogListening(*lo, "reload: ");
    listeners.push_back(*opened);
    asio::co_spawn(impl_->io, impl_->Accept(*opened), LogIfBug(Service::kSmtpd, "a listener"));
  }
}

void SmtpServer::Stop() {
  if (impl_->stopping) return;
  impl_->stopping = true;
  for (auto& l : impl_->listeners) {
    std::error_code ec;
    if (l->acceptor) l->acceptor->close(ec);
  }
  impl_->WakeForShutdown();
  // A message being received may finish within the grace period; then it is cut too.
  impl_->grace = std::make_unique<asio::steady_timer>(impl_->io, std::chrono::seconds(10));
  impl_->grace->async_wait([weak = std::weak_ptr<Impl>(impl_)](std::error_code ec) {
    auto impl = weak.lock();
    if (ec || !impl) return;
    impl->data_grace_over = true;
    impl->WakeForShutdown();
  });
}

std::size_t SmtpServer::ActiveSessions() const { return impl_->live.size(); }

}  // namespace danerelay::relay
