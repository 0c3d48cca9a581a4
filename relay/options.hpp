#pragma once
// The SMTP server's options, filled by config/ (or by a test in two lines).
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "queue/retry.hpp"
#include "relay/dkim/options.hpp"
#include "relay/network.hpp"
#include "relay/reply_rules.hpp"
#include "relay/routes.hpp"
#include "tls/server_context.hpp"

namespace danerelay::relay {

using Duration = std::chrono::seconds;

struct ListenerOptions {
  std::string address = "127.0.0.1";  // an IP literal; "::" or "0.0.0.0" for all
  std::uint16_t port = 2525;
  bool starttls = false;      // offer STARTTLS; needs tls.cert_file and tls.key_file
  bool implicit_tls = false;  // TLS from the first byte (RFC 8314, port 465); needs the same
  bool require_tls = false;   // MAIL only inside TLS: 530 5.7.0 before STARTTLS
  bool auth = true;           // offer AUTH here (inside TLS, when [auth] users_file is set)
  tls::ServerTlsOptions tls;
};

// SMTP AUTH (RFC 4954): who may submit mail without being in trusted_networks.
struct AuthOptions {
  std::filesystem::path users_file;  // "user:hash" lines (yescrypt, SHA-512-crypt); "": no AUTH
  // user -> the addresses and "@domain"s it may use in MAIL FROM; users not named: any.
  std::map<std::string, std::vector<std::string>> senders;
  std::uint32_t max_failures = 5;  // failed AUTH per client IP within failure_window: 421
  Duration failure_window = std::chrono::minutes(10);
  // Failures are counted per client group: an IPv6 client usually holds a whole /64.
  int ipv4_prefix = 32;
  int ipv6_prefix = 64;
};

struct LimitsOptions {
  std::uint64_t max_message_size = 25 * 1024 * 1024;  // octets, advertised with SIZE
  std::uint32_t max_recipients = 1000;                // per message
  std::uint32_t max_connections = 200;                // in total
  std::uint32_t max_connections_per_client = 50;      // per client IP (as Postfix)
  // Connections from clients outside trusted_networks (they may only authenticate), so that
  // they can never take every slot from the servers the relay is there for.
  std::uint32_t max_untrusted_connections = 100;
  std::uint32_t max_errors = 20;  // protocol errors before the session is closed with 421
  // Commands in a row that queue no message (NOOP, RSET, VRFY, HELO, refused ones, ...;
  // accepted RCPTs do not count) before the session is closed with 421 (Postfix:
  // smtpd_junk_command_limit 100). The count starts over when a message is queued.
  std::uint32_t max_commands_without_mail = 100;
  // Message bytes all sessions together hold in memory; past it a message gets 452 4.3.1.
  std::uint64_t max_inflight_bytes = 512 * 1024 * 1024;
  // RFC 5321 §4.5.3.2.7: a server should wait at least 5 minutes for the next command or line.
  Duration command_timeout = std::chrono::minutes(5);
  Duration data_timeout = std::chrono::minutes(5);
  // Clients outside trusted_networks (issue 20): a lower share per client, clients grouped by
  // /client_ipv6_prefix, connections per minute per client group (Postfix's anvil:
  // smtpd_client_connection_rate_limit; 0: none), and a deadline to authenticate by.
  std::uint32_t max_untrusted_connections_per_client = 10;
  int client_ipv6_prefix = 64;
  std::uint32_t max_connection_rate = 60;
  Duration untrusted_auth_timeout = std::chrono::seconds(60);
  // DATA must arrive at this rate, octets per second (Postfix's smtpd_min_data_rate): each
  // read adds octets/rate to the DATA deadline, never beyond data_timeout from now. 0: off.
  std::uint32_t min_data_rate = 500;
};

// The operator's checks of the sender address before MAIL is accepted (seed 002, "DNS-Checks ->
// 1. Absender-Adresse"). The null sender is never checked.
struct SenderCheckOptions {
  bool domain_exists = true;       // MX, A or AAAA must exist: 550 5.1.8; a DNS failure: 450 4.1.8
  bool reject_private_mx = false;  // MX hosts (or the domain's own addresses) not globally routed
  std::filesystem::path allow_list;  // "": off; else only these addresses and "@domain"s
  std::vector<std::string> rhsbl;    // domain blocklists: <sender domain>.<list> has an A record
  bool exempt_trusted = false;       // clients in trusted_networks skip the checks
  // The operator's own domains: their senders are verified by an RCPT probe to the domain's
  // mail exchanger on verify_port (cached: valid 1 day, invalid 3 hours).
  std::vector<std::string> verify_domains;
  std::uint16_t verify_port = 25;
};

// [log]
struct LogOptions {
  int level = 2;                         // spdlog::level: 1 debug, 2 info, 3 warning, 4 error
  bool syslog = false;                   // to syslog/journald instead of stderr
  std::string syslog_facility = "mail";  // mail, daemon, local0..local7
};

// [metrics]: the Prometheus endpoint; no address, no endpoint.
struct MetricsOptions {
  std::string address;  // e.g. "127.0.0.1"
  std::uint16_t port = 9325;
};

// [quotas]: sending quotas (relay/inbound/sending_quotas.hpp). Each rule gives limits per
// window; a key (the user, the client address, the sender, its domain) past one gets 450 4.7.1
// at MAIL (messages) or RCPT (recipients).
struct QuotaLimit {
  std::uint64_t count = 0;
  std::chrono::seconds window{0};
  std::string text;  // as written: "2000/h"
};
struct QuotaRule {
  enum class Kind { kUser, kClient, kSender, kSenderDomain };
  Kind kind = Kind::kUser;
  std::string match;                 // user name, sender address or domain (lower case), or "*"
  std::optional<IpNetwork> network;  // kClient: the trusted clients it counts, per address
  std::vector<QuotaLimit> messages, recipients;
};
struct QuotaOptions {
  std::vector<QuotaRule> rules;
};

// [privacy]: what the relay keeps of a client in the message. hide_client: the Received
// header keeps its place, protocol and TLS but names no client ("from client.invalid").
struct PrivacyOptions {
  bool hide_auth = false;     // hide_client has "auth": authenticated submissions
  bool hide_trusted = false;  // hide_client has "trusted": unauthenticated trusted clients
  std::vector<std::string> remove_headers;  // header fields removed from every submission
};

// [archive]: a copy of every submission for archiving rules (Postfix's always_bcc and
// sender_bcc_maps), added as envelope recipients with NOTIFY=NEVER, never in the header.
struct ArchiveOptions {
  std::string recipient;                                // all mail; "": none
  std::map<std::string, std::string> by_sender_domain;  // lower-case domain -> address
};

struct ServerOptions {
  std::string hostname;  // announced in the greeting, EHLO and Received; default: gethostname()
  // The account the daemon runs as once its listeners are bound ("": stays as started; as
  // root that is warned about). The group defaults to the user's primary group.
  std::string user;
  std::string group;
  std::vector<ListenerOptions> listeners = {ListenerOptions{}};
  std::vector<IpNetwork> trusted_networks = {*IpNetwork::Parse("127.0.0.0/8"),
                                             *IpNetwork::Parse("::1")};
  LimitsOptions limits;
  AuthOptions auth;
  SenderCheckOptions sender_checks;
  QuotaOptions quotas;
  DkimOptions dkim;
  PrivacyOptions privacy;
  ArchiveOptions archive;
};

struct ClientTimeouts {
  // RFC 5321 §4.5.3.2.
  std::chrono::seconds connect{30};
  std::chrono::seconds greeting{300};
  std::chrono::seconds command{300};  // EHLO, MAIL, RCPT, RSET, QUIT
  std::chrono::seconds data_init{120};
  std::chrono::seconds data_block{180};
  std::chrono::seconds data_done{600};
};

// [mta_sts] (RFC 8461), with [tls] ca_file.
struct MtaStsOptions {
  bool enabled = true;
  std::uint16_t https_port = 443;  // where policy servers listen (tests and proxies change it)
  std::chrono::seconds fetch_timeout{60};
  std::string ca_file;  // [tls] ca_file: the WebPKI trust store ("": the system's)
  // HTTPS to special-purpose addresses (loopback, private, ...): policy fetches and TLS-RPT
  // POSTs go where a remote domain's DNS says, so only test worlds allow it.
  bool allow_special_addresses = false;
};

// [tls_rpt] (RFC 8460): whether daily reports are sent, and who they say they come from.
struct TlsRptOptions {
  bool enabled = false;
  std::string organization;  // default: the host name
  std::string contact;       // default: postmaster@<host name>
};

// [shaping.providers]: a provider whose hosted domains have MX hosts under these suffixes
// (".mail.protection.outlook.com"): all of them are one site, `name`.
struct SiteProvider {
  std::string name;
  std::vector<std::string> suffixes;  // lower case, with the leading dot
};

struct DeliveryOptions {
  bool enabled = true;      // false: accept and queue mail, deliver nothing (maintenance, tests)
  std::uint16_t port = 25;  // [delivery] port
  std::uint32_t max_parallel = 20;  // messages in delivery at once
  // [shaping.default] connections (its old name: [delivery] max_per_destination): deliveries
  // to one site (relay/delivery/sites.hpp) at once (Postfix: 20, per domain).
  std::uint32_t max_per_destination = 20;
  // Per delivery attempt: MX hosts considered (in preference order) and addresses connected to
  // in all (Postfix: smtp_mx_address_limit = 5), so that a domain with hundreds of MX records
  // cannot tie a delivery slot up for hours. A cut list is logged.
  std::uint32_t max_mx_hosts = 5;
  // [shaping.default] messages_per_connection: a cached connection carries at most this many
  // messages, then QUIT and a new one (receivers throttle long sessions; KumoMTA's default).
  std::uint32_t messages_per_connection = 100;
  // [shaping.default] message_rate, and [shaping.domain."D"] message_rate for one recipient
  // domain: messages per window to it, paced evenly (relay/delivery/rate_gate.hpp). None: no
  // limit.
  std::optional<QuotaLimit> message_rate;
  std::map<std::string, QuotaLimit> message_rate_by_domain;
  // [shaping.default] connection_rate: new connections per window to one site, paced evenly; a
  // delivery that finds an idle cached connection to its site needs none. None: no limit.
  std::optional<QuotaLimit> connection_rate;
  // [shaping.site."S"]: what differs for a site (sites.hpp: "google", "route [h]:p", or the MX
  // set "mx1.example.net,mx2.example.net"), shared by its domains; unset: [shaping.default].
  struct SiteShaping {
    std::optional<std::uint32_t> connections;
    std::optional<std::uint32_t> messages_per_connection;
    std::optional<QuotaLimit> message_rate;
    std::optional<QuotaLimit> connection_rate;
  };
  std::map<std::string, SiteShaping> site_shaping;
  // [shaping.providers]: NAME = [".suffix", ...], before the shipped ones.
  std::vector<SiteProvider> providers;
  // [[shaping.on_reply]]: the operator's rules, tried before the shipped ones (reply_rules.hpp).
  std::vector<ReplyRule> on_reply;
  // [shaping.default] dead_after, dead_for: after that many connection or handshake failures in
  // a row to a domain's MX hosts it is suspended that long, then probed with one delivery
  // (relay/delivery/dead_destinations.hpp). 0: never.
  std::uint32_t dead_after = 10;
  std::chrono::seconds dead_for{300};
  std::uint32_t max_addresses = 5;
  std::string postmaster;     // gets a copy of undeliverable mail from <> ("": log only)
  queue::RetryOptions retry;  // [retry]
  std::chrono::seconds keep_completed{86400};  // [queue] keep_completed
  std::vector<std::string> mandatory_domains;  // [dane] mandatory_domains
  // [dane] testing_domains: DANE is judged as mandatory and what would defer is logged and
  // recorded ("would defer"), but the mail goes out under the opportunistic rules.
  std::vector<std::string> testing_domains;
  std::chrono::seconds preflight_interval = std::chrono::hours(6);  // 0: no pre-flight check
  Routes routes;         // [routes], [sender_routes], [tls_policy]
  SourceOptions source;  // [delivery] source_address, source_address6, ehlo_name, ...
  // Mail loops (RFC 5321 §6.3): a message with more Received header fields than [limits]
  // max_hops is returned 5.4.6, never relayed (Postfix: hopcount_limit = 50); a next hop that
  // is one of our own listeners (the listeners of [server], filled in by config/) is never
  // connected to.
  std::uint32_t max_hops = 50;
  std::vector<ListenAddress> own_listeners;
  MtaStsOptions mta_sts;
  TlsRptOptions tls_rpt;
  ClientTimeouts timeouts;
};

}  // namespace danerelay::relay
