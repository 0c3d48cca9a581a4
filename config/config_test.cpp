#include "config/config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace danerelay::config {
namespace {

using ::testing::HasSubstr;

TEST(ConfigTest, DefaultsWorkForAFirstTry) {
  const Config c = Defaults();
  ASSERT_EQ(c.server.listeners.size(), 1u);
  EXPECT_EQ(c.server.listeners[0].address, "127.0.0.1");
  EXPECT_EQ(c.server.listeners[0].port, 2525);
  EXPECT_FALSE(c.server.listeners[0].starttls);
  ASSERT_EQ(c.server.trusted_networks.size(), 2u);
  EXPECT_TRUE(c.server.trusted_networks[0].Contains("127.0.0.1"));
  EXPECT_TRUE(c.server.trusted_networks[1].Contains("::1"));
  EXPECT_EQ(c.queue.path, "data");
  EXPECT_FALSE(c.server.hostname.empty());
}

TEST(ConfigTest, ExampleFileLoadsAndEqualsTheDefaults) {
  auto c = LoadFile(DANERELAY_EXAMPLE_CONFIG);
  ASSERT_TRUE(c) << c.error().message;
  const Config d = Defaults();
  EXPECT_EQ(c->server.limits.max_message_size, d.server.limits.max_message_size);
  EXPECT_EQ(c->server.limits.max_recipients, d.server.limits.max_recipients);
  EXPECT_EQ(c->server.limits.max_connections, d.server.limits.max_connections);
  EXPECT_EQ(c->server.limits.max_connections_per_client,
            d.server.limits.max_connections_per_client);
  EXPECT_EQ(c->server.limits.max_errors, d.server.limits.max_errors);
  EXPECT_EQ(c->server.limits.max_untrusted_connections, d.server.limits.max_untrusted_connections);
  EXPECT_EQ(c->server.limits.max_commands_without_mail, d.server.limits.max_commands_without_mail);
  EXPECT_EQ(c->log.level, d.log.level);
  EXPECT_EQ(c->log.syslog, d.log.syslog);
  EXPECT_EQ(c->log.syslog_facility, d.log.syslog_facility);
  EXPECT_EQ(c->server.limits.max_inflight_bytes, d.server.limits.max_inflight_bytes);
  EXPECT_EQ(c->delivery.max_hops, d.delivery.max_hops);
  EXPECT_EQ(c->server.auth.users_file, d.server.auth.users_file);
  EXPECT_EQ(c->server.auth.max_failures, d.server.auth.max_failures);
  EXPECT_EQ(c->server.auth.failure_window, d.server.auth.failure_window);
  EXPECT_EQ(c->server.auth.senders, d.server.auth.senders);
  EXPECT_EQ(c->server.sender_checks.domain_exists, d.server.sender_checks.domain_exists);
  EXPECT_EQ(c->server.sender_checks.reject_private_mx, d.server.sender_checks.reject_private_mx);
  EXPECT_EQ(c->server.sender_checks.allow_list, d.server.sender_checks.allow_list);
  EXPECT_EQ(c->server.sender_checks.rhsbl, d.server.sender_checks.rhsbl);
  EXPECT_EQ(c->server.sender_checks.exempt_trusted, d.server.sender_checks.exempt_trusted);
  EXPECT_EQ(c->server.sender_checks.verify_domains, d.server.sender_checks.verify_domains);
  EXPECT_EQ(c->server.sender_checks.verify_port, d.server.sender_checks.verify_port);
  ASSERT_EQ(c->server.listeners.size(), d.server.listeners.size());
  EXPECT_EQ(c->server.listeners[0].implicit_tls, d.server.listeners[0].implicit_tls);
  EXPECT_EQ(c->server.listeners[0].require_tls, d.server.listeners[0].require_tls);
  EXPECT_EQ(c->server.listeners[0].auth, d.server.listeners[0].auth);
  EXPECT_EQ(c->server.limits.command_timeout, d.server.limits.command_timeout);
  EXPECT_EQ(c->server.limits.data_timeout, d.server.limits.data_timeout);
  EXPECT_EQ(c->server.limits.min_data_rate, d.server.limits.min_data_rate);
  EXPECT_EQ(c->server.limits.max_untrusted_connections_per_client,
            d.server.limits.max_untrusted_connections_per_client);
  EXPECT_EQ(c->server.limits.client_ipv6_prefix, d.server.limits.client_ipv6_prefix);
  EXPECT_EQ(c->server.limits.max_connection_rate, d.server.limits.max_connection_rate);
  EXPECT_EQ(c->server.limits.untrusted_auth_timeout, d.server.limits.untrusted_auth_timeout);
  EXPECT_EQ(c->server.auth.ipv4_prefix, d.server.auth.ipv4_prefix);
  EXPECT_EQ(c->server.auth.ipv6_prefix, d.server.auth.ipv6_prefix);
  EXPECT_EQ(c->server.listeners[0].port, d.server.listeners[0].port);
  EXPECT_EQ(c->queue.path.filename(), "data");
  EXPECT_EQ(c->dns.trust_anchor_file, d.dns.trust_anchor_file);
  EXPECT_EQ(c->dns.timeout, d.dns.timeout);
  EXPECT_EQ(c->delivery.port, d.delivery.port);
  EXPECT_EQ(c->delivery.enabled, d.delivery.enabled);
  EXPECT_EQ(c->delivery.max_parallel, d.delivery.max_parallel);
  EXPECT_EQ(c->delivery.max_per_destination, d.delivery.max_per_destination);
  EXPECT_EQ(c->delivery.messages_per_connection, d.delivery.messages_per_connection);
  EXPECT_EQ(c->delivery.dead_after, d.delivery.dead_after);
  EXPECT_EQ(c->delivery.dead_for, d.delivery.dead_for);
  EXPECT_EQ(c->delivery.retry.min_backoff, d.delivery.retry.min_backoff);
  EXPECT_EQ(c->delivery.retry.max_backoff, d.delivery.retry.max_backoff);
  EXPECT_EQ(c->delivery.retry.max_lifetime, d.delivery.retry.max_lifetime);
  EXPECT_EQ(c->delivery.retry.delay_warning, d.delivery.retry.delay_warning);
  EXPECT_EQ(c->delivery.keep_completed, d.delivery.keep_completed);
  EXPECT_EQ(c->delivery.timeouts.connect, d.delivery.timeouts.connect);
  EXPECT_TRUE(c->delivery.mandatory_domains.empty());
  EXPECT_TRUE(c->delivery.routes.empty());
  EXPECT_EQ(c->delivery.mta_sts.enabled, d.delivery.mta_sts.enabled);
  EXPECT_EQ(c->delivery.tls_rpt.enabled, d.delivery.tls_rpt.enabled);
  EXPECT_FALSE(d.delivery.tls_rpt.enabled);  // reports go out only when asked for
  // HTTPS to loopback and private addresses only where a test world asks for it.
  EXPECT_FALSE(d.delivery.mta_sts.allow_special_addresses);
  EXPECT_EQ(c->delivery.mta_sts.allow_special_addresses,
            d.delivery.mta_sts.allow_special_addresses);
}

TEST(ConfigTest, GoodFile) {
  auto c = LoadString(R"(
[server]
hostname = "relay.example.org"

[[listener]]
address = "127.0.0.2"
port = 2526

[[listener]]
address = "::1"
port = 587
starttls = true
require_tls = true
cert_file = "tls/c.pem"
key_file = "/etc/k.pem"

[[listener]]
address = "::1"
port = 465
implicit_tls = true
auth = false
cert_file = "tls/c.pem"
key_file = "/etc/k.pem"

[access]
trusted_networks = ["10.0.0.0/8", "2001:db8::/32"]

[sender_checks]
reject_private_mx = true
allow_list = "senders.txt"
rhsbl = ["dbl.example.org"]
exempt_trusted = true

[auth]
users_file = "users"
max_failures = 3
failure_window = "1h"
[auth.senders]
alice = ["alice@example.org", "@sales.example.org"]

[limits]
max_message_size = 1048576
max_recipients = 50
max_connections = 10
max_connections_per_client = 2
command_timeout = "30s"
data_timeout = 120

[queue]
path = "q"

[dns]
trust_anchor_file = "anchor.key"
forwarders = ["127.0.0.53@5353", "::1"]
timeout = "3s"

[dane]
mandatory_domains = ["example.net", ".example.org"]
testing_domains = ["example.com", ".BÜCHER.example"]
preflight_interval = "1h"

[mta_sts]
allow_special_addresses = true

[tls_rpt]
enabled = true
contact = "tlsrpt@example.org"

[delivery]
port = 2525
max_parallel = 4

[retry]
min_backoff = "30s"
max_lifetime = "2d"

[routes]
"Example.COM" = "[mx.example.com]:2526"
"ip.example" = "[192.0.2.1]"
)",
                      "t.toml", "/etc/danerelay");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->server.hostname, "relay.example.org");
  ASSERT_EQ(c->server.listeners.size(), 3u);
  EXPECT_EQ(c->server.listeners[0].address, "127.0.0.2");
  EXPECT_EQ(c->server.listeners[1].port, 587);
  EXPECT_TRUE(c->server.listeners[1].starttls);
  EXPECT_EQ(c->server.listeners[1].tls.cert_file, "/etc/danerelay/tls/c.pem");
  EXPECT_EQ(c->server.listeners[1].tls.key_file, "/etc/k.pem");
  ASSERT_EQ(c->server.trusted_networks.size(), 2u);
  EXPECT_TRUE(c->server.trusted_networks[0].Contains("10.9.8.7"));
  EXPECT_FALSE(c->server.trusted_networks[0].Contains("127.0.0.1"));
  EXPECT_EQ(c->server.limits.max_message_size, 1048576u);
  EXPECT_EQ(c->server.limits.command_timeout, std::chrono::seconds(30));
  EXPECT_EQ(c->server.limits.data_timeout, std::chrono::seconds(120));
  EXPECT_EQ(c->queue.path, "/etc/danerelay/q");
  EXPECT_EQ(c->dns.trust_anchor_file, "/etc/danerelay/anchor.key");
  EXPECT_EQ(c->dns.forwarders, (std::vector<std::string>{"127.0.0.53@5353", "::1"}));
  EXPECT_EQ(c->dns.timeout, std::chrono::seconds(3));
  EXPECT_EQ(c->delivery.mandatory_domains,
            (std::vector<std::string>{"example.net", ".example.org"}));
  // U-labels are kept as A-labels, the form delivery compares with.
  EXPECT_EQ(c->delivery.testing_domains,
            (std::vector<std::string>{"example.com", ".xn--bcher-kva.example"}));
  EXPECT_EQ(c->delivery.preflight_interval, std::chrono::hours(1));
  EXPECT_TRUE(c->delivery.tls_rpt.enabled);
  EXPECT_EQ(c->delivery.tls_rpt.contact, "tlsrpt@example.org");
  EXPECT_TRUE(c->delivery.mta_sts.allow_special_addresses);
  EXPECT_EQ(c->delivery.port, 2525);
  EXPECT_EQ(c->delivery.max_parallel, 4u);
  EXPECT_EQ(c->delivery.retry.min_backoff, std::chrono::seconds(30));
  EXPECT_EQ(c->delivery.retry.max_lifetime, std::chrono::hours(48));
  EXPECT_TRUE(c->server.listeners[1].require_tls);
  EXPECT_TRUE(c->server.listeners[1].auth);
  EXPECT_TRUE(c->server.listeners[2].implicit_tls);
  EXPECT_FALSE(c->server.listeners[2].auth);
  EXPECT_EQ(c->server.auth.users_file, std::filesystem::path("/etc/danerelay/users"));
  EXPECT_EQ(c->server.auth.max_failures, 3u);
  EXPECT_TRUE(c->server.sender_checks.domain_exists);
  EXPECT_TRUE(c->server.sender_checks.reject_private_mx);
  EXPECT_EQ(c->server.sender_checks.allow_list,
            std::filesystem::path("/etc/danerelay/senders.txt"));
  EXPECT_EQ(c->server.sender_checks.rhsbl, std::vector<std::string>{"dbl.example.org"});
  EXPECT_TRUE(c->server.sender_checks.exempt_trusted);
  EXPECT_EQ(c->server.auth.failure_window, std::chrono::hours(1));
  EXPECT_EQ(c->server.auth.senders.at("alice"),
            (std::vector<std::string>{"alice@example.org", "@sales.example.org"}));
  ASSERT_EQ(c->delivery.routes.by_domain.size(), 2u);
  const relay::Route& route = c->delivery.routes.by_domain.at("example.com");
  ASSERT_EQ(route.hosts.size(), 1u);
  EXPECT_EQ(route.hosts[0].host, "mx.example.com");
  EXPECT_EQ(route.hosts[0].port, 2526);
  EXPECT_FALSE(route.hosts[0].ip_literal);
  EXPECT_FALSE(route.hosts[0].mx_lookup);
  EXPECT_EQ(route.tls.policy, relay::TlsPolicy::kDane);
  const relay::Route& ip = c->delivery.routes.by_domain.at("ip.example");
  EXPECT_TRUE(ip.hosts[0].ip_literal);
  EXPECT_EQ(ip.hosts[0].port, 0);
}

TEST(ConfigTest, RouteTablesSenderRoutesAndTlsPolicies) {
  auto c = LoadString(R"(
[delivery]
source_address = "127.0.0.9"
ehlo_name = "out.example.org"
[routes]
"*" = { hosts = ["[smtp.provider.example]:587", "relay.provider.example:587"], fallback = ["[backup.example]"], tls = "verify", tls_names = ["smtp.provider.example"] }
".partner.example" = { hosts = ["[gw.partner.example]"], tls = "fingerprint", fingerprints = ["AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"], address_preference = "ipv6", address_families = ["ipv6"] }
[sender_routes]
"@dept.example.org" = "*"
"boss@example.org" = "[boss-relay.example]:2525"
[tls_policy]
"bank.example" = "verify"
".other.example" = { tls = "encrypt" }
)",
                      "t.toml", "/etc/danerelay");
  ASSERT_TRUE(c) << c.error().message;
  const auto& r = c->delivery.routes;
  const relay::Route& star = r.by_domain.at("*");
  ASSERT_EQ(star.hosts.size(), 2u);
  EXPECT_FALSE(star.hosts[0].mx_lookup);
  EXPECT_TRUE(star.hosts[1].mx_lookup);  // unbracketed: its MX hosts, as Postfix
  EXPECT_EQ(star.hosts[1].port, 587);
  ASSERT_EQ(star.fallback.size(), 1u);
  EXPECT_EQ(star.tls.policy, relay::TlsPolicy::kVerify);
  EXPECT_EQ(star.tls.names, std::vector<std::string>{"smtp.provider.example"});
  EXPECT_EQ(star.source.address, "127.0.0.9");  // [delivery]'s, inherited
  EXPECT_EQ(star.source.ehlo_name, "out.example.org");
  const relay::Route& partner = r.by_domain.at(".partner.example");
  EXPECT_EQ(
      partner.tls.fingerprints,
      std::vector<std::string>{"abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"});
  EXPECT_EQ(partner.source.preference, relay::AddressPreference::kIpv6);
  EXPECT_FALSE(partner.source.ipv4);
  EXPECT_EQ(r.by_sender.at("@dept.example.org").hosts[0].host, "smtp.provider.example");
  EXPECT_EQ(r.by_sender.at("boss@example.org").hosts[0].port, 2525);
  EXPECT_EQ(r.tls_policy.at("bank.example").policy, relay::TlsPolicy::kVerify);
  EXPECT_EQ(r.tls_policy.at(".other.example").policy, relay::TlsPolicy::kEncrypt);
}

struct BadCase {
  const char* name;
  const char* toml;
  const char* expected;  // the whole "file:line: key: ..." prefix or a part of the message
};

class ConfigErrorTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConfigErrorTest, NamesFileLineAndKey) {
  auto c = LoadString(GetParam().toml, "bad.toml", "/tmp");
  ASSERT_FALSE(c) << GetParam().name;
  EXPECT_THAT(c.error().message, HasSubstr(GetParam().expected)) << c.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    EachKindOfError, ConfigErrorTest,
    ::testing::Values(
        BadCase{"syntax", "[server]\nhostname = \n", "bad.toml:2: syntax error"},
        BadCase{"wrong type", "[limits]\n\nmax_recipients = \"ten\"\n",
                "bad.toml:3: limits.max_recipients: expected an integer, got a string"},
        BadCase{"out of range", "[limits]\nmax_recipients = 0\n",
                "bad.toml:2: limits.max_recipients: 0 is out of range"},
        BadCase{"negative", "[limits]\nmax_connections = -5\n",
                "bad.toml:2: limits.max_connections: -5 is out of range"},
        BadCase{"unknown key", "[limits]\nmax_recipient = 10\n",
                "bad.toml:2: limits.max_recipient: unknown key"},
        BadCase{"special addresses not a bool", "[mta_sts]\n\nallow_special_addresses = \"yes\"\n",
                "bad.toml:3: mta_sts.allow_special_addresses"},
        BadCase{"unknown section", "[queues]\npath = \"x\"\n", "bad.toml:1: queues: unknown key"},
        BadCase{"archive key", "[archive]\nrecipients = \"a@b.example\"\n",
                "bad.toml:2: archive.recipients: expected recipient or \"@domain\""},
        BadCase{"archive address", "[archive]\n\"@example.org\" = \"nobody\"\n",
                "bad.toml:2: archive.@example.org: 'nobody' is not an address"},
        BadCase{"privacy source", "[privacy]\nhide_client = [\"everyone\"]\n",
                "bad.toml:2: privacy.hide_client"},
        BadCase{"privacy header", "[privacy]\nremove_headers = [\"Received\"]\n",
                "'Received' cannot be removed"},
        BadCase{"dkim header pattern", "[dkim]\nheaders = [\"From\", \"X-*\"]\n",
                "bad.toml:2: dkim.headers: 'X-*' is not a header field name (letters, digits, "
                "hyphens)"},
        BadCase{"section not a table", "queue = 5\n",
                "bad.toml:1: queue: expected a table [queue], got an integer"},
        BadCase{"bad duration", "[limits]\ncommand_timeout = \"5 minutes\"\n",
                "bad.toml:2: limits.command_timeout: expected a duration"},
        BadCase{"bad network", "[access]\ntrusted_networks = [\"127.0.0.0/8\",\n \"10.1.2.3/8\"]\n",
                "bad.toml:3: access.trusted_networks: '10.1.2.3/8' has host bits set"},
        BadCase{"network not a string", "[access]\ntrusted_networks = [1]\n",
                "bad.toml:2: access.trusted_networks: expected a string, got an integer"},
        BadCase{"bad hostname", "[server]\nhostname = \"relay example\"\n",
                "bad.toml:2: server.hostname: expected a host name"},
        BadCase{"listener address", "[[listener]]\naddress = \"localhost\"\n",
                "bad.toml:2: listener[0].address: expected an IP address"},
        BadCase{"listener port", "[[listener]]\nport = 70000\n",
                "bad.toml:2: listener[0].port: 70000 is out of range"},
        BadCase{"starttls without cert", "[[listener]]\nport = 25\nstarttls = true\n",
                "bad.toml:3: listener[0].starttls: STARTTLS needs cert_file and key_file"},
        BadCase{"unknown listener key", "[[listener]]\nport = 25\n[[listener]]\nprot = 26\n",
                "bad.toml:4: listener[1].prot: unknown key"},
        BadCase{"empty path", "[queue]\npath = \"\"\n",
                "bad.toml:2: queue.path: must not be empty"},
        BadCase{"bad forwarder", "[dns]\nforwarders = [\"dns.example\"]\n",
                "bad.toml:2: dns.forwarders: 'dns.example' is not an IP address"},
        BadCase{"bad forwarder port", "[dns]\nforwarders = [\"127.0.0.1@0\"]\n",
                "bad.toml:2: dns.forwarders: '127.0.0.1@0': the port after @ must be 1..65535"},
        BadCase{"bad mandatory domain", "[dane]\nmandatory_domains = [\"exa mple.org\"]\n",
                "bad.toml:2: dane.mandatory_domains: 'exa mple.org' is not a domain"},
        BadCase{"bad testing domain", "[dane]\ntesting_domains = [\"a/b.org\"]\n",
                "bad.toml:2: dane.testing_domains: 'a/b.org' is not a domain"},
        BadCase{"bad IDN", "[dane]\nmandatory_domains = [\"\xe2\x98\x83.example\"]\n",
                "bad.toml:2: dane.mandatory_domains: '\xe2\x98\x83.example' is not a valid "
                "internationalized domain name"},
        BadCase{"preflight too rare", "[dane]\npreflight_interval = \"8d\"\n",
                "bad.toml:2: dane.preflight_interval: must be at most 7d"},
        BadCase{"bad route", "[routes]\n\"example.net\" = \"[mx.example.net]:0\"\n",
                "bad.toml:2: routes.example.net: expected a next hop"},
        BadCase{"route not a string", "[routes]\n\"example.net\" = 25\n",
                "bad.toml:2: routes.example.net: expected a string, got an integer"},
        BadCase{"route key", "[routes]\n\"exa mple\" = \"[mx.example]\"\n",
                "bad.toml:2: routes.exa mple: the key must be a domain"},
        BadCase{"route without hosts", "[routes]\n\"*\" = { tls = \"verify\" }\n",
                "bad.toml:2: routes.*.hosts: a route needs at least one host"},
        BadCase{"unknown TLS policy",
                "[routes]\n\"*\" = { hosts = [\"[a.example]\"], tls = "
                "\"secure\" }\n",
                "bad.toml:2: routes.*.tls: expected one of dane, dane-only, verify"},
        BadCase{"fingerprint without pins", "[tls_policy]\n\"a.example\" = \"fingerprint\"\n",
                "bad.toml:2: tls_policy.a.example: fingerprint needs a table"},
        BadCase{"bad pin",
                "[tls_policy]\n\"a.example\" = { tls = \"fingerprint\", "
                "fingerprints = [\"abc\"] }\n",
                "bad.toml:2: tls_policy.a.example.fingerprints: 'abc' is not a SHA-256"},
        BadCase{"auth under may",
                "[routes]\n\"*\" = { hosts = [\"[a.example]\"], tls = "
                "\"may\", auth = { user = \"u\", password_file = \"/etc/passwd\" } }\n",
                "bad.toml:2: routes.*.auth: tls = \"may\" never verifies the upstream"},
        BadCase{"password file readable by others",
                "[routes]\n\"*\" = { hosts = [\"[a.example]\"], tls = \"verify\", auth = "
                "{ user = \"u\", password_file = \"/etc/passwd\" } }\n",
                "bad.toml:2: routes.*.auth.password_file: '/etc/passwd' is readable by group "
                "or others"},
        BadCase{"mandatory weakened",
                "[dane]\nmandatory_domains = [\".bank.example\"]\n"
                "[tls_policy]\n\"x.bank.example\" = \"encrypt\"\n",
                "bad.toml:4: tls_policy.x.bank.example: x.bank.example is in [dane] "
                "mandatory_domains"},
        BadCase{"sender route key", "[sender_routes]\n\"nobody\" = \"[a.example]\"\n",
                "bad.toml:2: sender_routes.nobody: the key must be \"user@example.com\""},
        BadCase{"source address family", "[delivery]\nsource_address = \"::1\"\n",
                "bad.toml:2: delivery.source_address: expected an IPv4 address"},
        BadCase{"backoff order", "[retry]\nmin_backoff = \"1h\"\nmax_backoff = \"5m\"\n",
                "bad.toml:3: retry.max_backoff: max_backoff must not be shorter than min_backoff"},
        BadCase{"lifetime beyond bound", "[retry]\nmax_lifetime = \"200000d\"\n",
                "bad.toml:2: retry.max_lifetime: expected a duration"},
        BadCase{"lifetime too long", "[retry]\nmax_lifetime = \"101d\"\n",
                "bad.toml:2: retry.max_lifetime: must be at most 100d"},
        BadCase{"integer duration too long", "[queue]\nkeep_completed = 99999999999\n",
                "bad.toml:2: queue.keep_completed: must be at most 365d"},
        BadCase{"no hops at all", "[limits]\nmax_hops = 0\n",
                "bad.toml:2: limits.max_hops: 0 is out of range (1..1000)"},
        BadCase{"budget below message size",
                "[limits]\nmax_message_size = 2048\nmax_inflight_bytes = 1024\n",
                "bad.toml:3: limits.max_inflight_bytes: max_inflight_bytes must not be smaller"},
        BadCase{"implicit tls without cert", "[[listener]]\nport = 465\nimplicit_tls = true\n",
                "bad.toml:3: listener[0].implicit_tls: implicit TLS needs cert_file and key_file"},
        BadCase{"require tls without tls", "[[listener]]\nport = 587\nrequire_tls = true\n",
                "bad.toml:3: listener[0].require_tls: require_tls needs starttls or implicit_tls"},
        BadCase{"bad sender entry", "[auth]\n[auth.senders]\nalice = [\"alice\"]\n",
                "bad.toml:3: auth.senders.alice: 'alice' is not an address or \"@domain\""},
        BadCase{"unknown auth key", "[auth]\nuser_file = \"u\"\n",
                "bad.toml:2: auth.user_file: unknown key"},
        BadCase{"bad rhsbl", "[sender_checks]\nrhsbl = [\"not a domain\"]\n",
                "bad.toml:2: sender_checks.rhsbl: 'not a domain' is not a domain"},
        // toml++ 3.3 has undefined behaviour on these (fuzz_config); refused before it parses.
        BadCase{"non-ASCII bare key", "[limits]\n\xEF\xBA\xBFx = 1\n",
                "bad.toml:2: syntax error: a non-ASCII character outside a quoted string or "
                "comment"},
        BadCase{"non-ASCII value", "# f\xC3\xBCr \"x\n[limits]\nmax_errors = 1\xCE\x93\n",
                "bad.toml:3: syntax error: a non-ASCII character outside a quoted string or "
                "comment"},
        BadCase{"bad log level", "[log]\nlevel = \"verbose\"\n",
                "bad.toml:2: log.level: expected \"debug\", \"info\", \"warning\" or \"error\""},
        BadCase{"bad facility", "[log]\nsyslog_facility = \"local9\"\n",
                "bad.toml:2: log.syslog_facility: expected \"mail\", \"daemon\" or "
                "\"local0\"..\"local7\""},
        BadCase{"unknown user", "[server]\nuser = \"no-such-user-danerelay\"\n",
                "bad.toml:2: server.user: no such user 'no-such-user-danerelay' on this system"},
        BadCase{"group without user", "[server]\ngroup = \"root\"\n",
                "bad.toml:2: server.group: group needs user"},
        BadCase{"bad verify domain", "[sender_checks]\nverify_domains = [\"a b\"]\n",
                "bad.toml:2: sender_checks.verify_domains: 'a b' is not a domain"},
        BadCase{"auth ipv6 prefix", "[auth]\nipv6_prefix = 129\n",
                "bad.toml:2: auth.ipv6_prefix: 129 is out of range (16..128)"},
        BadCase{"auth ipv4 prefix", "[auth]\nipv4_prefix = 4\n",
                "bad.toml:2: auth.ipv4_prefix: 4 is out of range (8..32)"},
        BadCase{"client ipv6 prefix", "[limits]\nclient_ipv6_prefix = 8\n",
                "bad.toml:2: limits.client_ipv6_prefix: 8 is out of range (16..128)"},
        BadCase{"untrusted per client", "[limits]\nmax_untrusted_connections_per_client = 0\n",
                "bad.toml:2: limits.max_untrusted_connections_per_client: 0 is out of range"},
        BadCase{"connection rate", "[limits]\nmax_connection_rate = \"many\"\n",
                "bad.toml:2: limits.max_connection_rate: expected an integer, got a string"},
        BadCase{"min data rate", "[limits]\nmin_data_rate = -1\n",
                "bad.toml:2: limits.min_data_rate: -1 is out of range"},
        BadCase{"auth timeout", "[limits]\nuntrusted_auth_timeout = \"0s\"\n",
                "bad.toml:2: limits.untrusted_auth_timeout: must be at least 1s"},
        BadCase{"bool wanted", "[[listener]]\nstarttls = \"yes\"\n",
                "bad.toml:2: listener[0].starttls: expected true or false, got a string"}),
    [](const auto& param_info) {
      std::string n = param_info.param.name;
      for (char& ch : n) ch = std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
      return n;
    });

TEST(ConfigTest, DeliveryKnowsTheListenersAndTheHopLimit) {
  EXPECT_EQ(Defaults().delivery.max_hops, 50u);
  ASSERT_EQ(Defaults().delivery.own_listeners.size(), 1u);
  EXPECT_EQ(Defaults().delivery.own_listeners[0].port, 2525);
  auto c = LoadString(
      "[limits]\nmax_hops = 30\n[[listener]]\naddress = \"::\"\nport = 25\n"
      "[[listener]]\naddress = \"127.0.0.2\"\nport = 587\n",
      "hops.toml", ".");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->delivery.max_hops, 30u);
  ASSERT_EQ(c->delivery.own_listeners.size(), 2u);
  EXPECT_EQ(c->delivery.own_listeners[0].address, "::");
  EXPECT_EQ(c->delivery.own_listeners[0].port, 25);
  EXPECT_EQ(c->delivery.own_listeners[1].address, "127.0.0.2");
  EXPECT_EQ(c->delivery.own_listeners[1].port, 587);
}

TEST(ConfigTest, NonAsciiInStringsAndCommentsIsFine) {
  auto c = LoadString(
      "# Zustellung f\xC3\xBCr alle \"Dom\xC3\xA4nen\n"
      "[queue]\npath = \"/var/d\xC3\xA4ta\\\"x\"  # \xCE\x93\n"
      "[delivery]\npostmaster = '''p\xC3\xB6@example.org'''\n",
      "ok.toml", "/etc");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->queue.path, "/var/d\xC3\xA4ta\"x");
}

TEST(ConfigTest, AbuseLimits) {
  auto c = LoadString(
      "[auth]\nipv4_prefix = 24\nipv6_prefix = 56\n"
      "[limits]\nmax_untrusted_connections_per_client = 3\nclient_ipv6_prefix = 48\n"
      "max_connection_rate = 0\nuntrusted_auth_timeout = \"2m\"\nmin_data_rate = 100\n",
      "ok.toml", "/etc");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->server.auth.ipv4_prefix, 24);
  EXPECT_EQ(c->server.auth.ipv6_prefix, 56);
  EXPECT_EQ(c->server.limits.max_untrusted_connections_per_client, 3u);
  EXPECT_EQ(c->server.limits.client_ipv6_prefix, 48);
  EXPECT_EQ(c->server.limits.max_connection_rate, 0u);
  EXPECT_EQ(c->server.limits.untrusted_auth_timeout, std::chrono::minutes(2));
  EXPECT_EQ(c->server.limits.min_data_rate, 100u);
}

TEST(ConfigTest, EveryProblemIsListedWithFileLineAndKey) {
  // Two in one table, one in another, one after a table that failed; `message` stays the first.
  auto c = LoadString(R"([server]
user = 5
colour = "blue"
[limits]
max_recipients = "many"
[retry]
min_backoff = "soon"
)",
                      "many.toml", "/tmp");
  ASSERT_FALSE(c);
  EXPECT_THAT(c.error().message, HasSubstr("many.toml:3: server.colour: unknown key"));
  EXPECT_THAT(c.error().all,
              ::testing::ElementsAre(HasSubstr("many.toml:3: server.colour: unknown key"),
                                     HasSubstr("many.toml:2: server.user: expected a string"),
                                     HasSubstr("many.toml:5: limits.max_recipients: expected an "
                                               "integer"),
                                     HasSubstr("many.toml:7: retry.min_backoff: expected a "
                                               "duration")));
}

TEST(ConfigTest, MissingFile) {
  auto c = LoadFile("/nonexistent/danerelay.toml");
  ASSERT_FALSE(c);
  EXPECT_THAT(c.error().message,
              HasSubstr("/nonexistent/danerelay.toml: cannot read configuration file"));
}

TEST(ConfigTest, FilesReadOnReloadNamesEachWithItsSetting) {
  auto c = LoadString(std::string(R"(
[[listener]]
address = "127.0.0.1"
port = 25
[[listener]]
address = "127.0.0.1"
port = 465
implicit_tls = true
cert_file = "tls/relay.crt"
key_file = "tls/relay.key"
[auth]
users_file = "users"
[sender_checks]
allow_list = "senders.txt"
[tls]
ca_file = ")") + DANERELAY_EXAMPLE_CONFIG +
                          "\"\n",
                      "danerelay.toml", "/etc/danerelay");
  ASSERT_TRUE(c) << c.error().message;
  std::vector<std::string> listed;
  for (const auto& f : FilesReadOnReload(*c)) listed.push_back(f.what + " " + f.path.string());
  EXPECT_THAT(listed, ::testing::ElementsAre(
                          "[auth] users_file /etc/danerelay/users",
                          "[sender_checks] allow_list /etc/danerelay/senders.txt",
                          "listener 127.0.0.1:465 cert_file /etc/danerelay/tls/relay.crt",
                          "listener 127.0.0.1:465 key_file /etc/danerelay/tls/relay.key",
                          std::string("[tls] ca_file ") + DANERELAY_EXAMPLE_CONFIG));
  // Loaded from a file, that file is read again too.
  auto f = LoadFile(DANERELAY_EXAMPLE_CONFIG);
  ASSERT_TRUE(f) << f.error().message;
  const auto from_file = FilesReadOnReload(*f);
  ASSERT_FALSE(from_file.empty());
  EXPECT_EQ(from_file[0].what, "configuration file");
  EXPECT_EQ(from_file[0].path, DANERELAY_EXAMPLE_CONFIG);
}

TEST(ConfigTest, UnreadableNamesTheSettingAndTheFile) {
  const std::vector<FileRead> files = {{"[tls] ca_file", DANERELAY_EXAMPLE_CONFIG},
                                       {"[auth] users_file", "/nonexistent/users"}};
  EXPECT_THAT(Unreadable(files),
              ::testing::ElementsAre(
                  "[auth] users_file /nonexistent/users: cannot read: No such file or directory"));
}

}  // namespace
}  // namespace danerelay::config
