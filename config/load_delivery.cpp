// The tables of the queue and of delivery: [queue], [dns], [dane], [mta_sts], [tls_rpt], [tls],
// [delivery], [retry].
#include <charconv>
#include <system_error>

#include "config/load_tables.hpp"
#include "dns/idn.hpp"

namespace danerelay::config {
namespace {

// A [dns] forwarder: "IP" or "IP@port"; "" or why it is not.
std::string ForwarderProblem(const std::string& f) {
  const auto at = f.find('@');
  if (!relay::IpNetwork::Parse(f.substr(0, at)) || f.find('/') != std::string::npos) {
    return "'" + f + "' is not an IP address (optionally with @port)";
  }
  if (at != std::string::npos) {
    int port = 0;
    const std::string p = f.substr(at + 1);
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
    if (ec != std::errc() || end != p.data() + p.size() || port < 1 || port > 65535) {
      return "'" + f + "': the port after @ must be 1..65535";
    }
  }
  return "";
}

}  // namespace

// [queue]; keep_completed is for delivery, which forgets finished messages.
void ReadQueue(Reader& r, queue::StoreOptions& store, std::chrono::seconds& keep_completed) {
  r.OnlyKeys({"path", "keep_completed"});
  r.Path("path", store.path);
  r.Duration("keep_completed", keep_completed, std::chrono::seconds(0));
}

// [dns]
void ReadDns(Reader& r, dns::ResolverOptions& dns) {
  r.OnlyKeys({"trust_anchor_file", "forwarders", "root_hints", "timeout", "validation_canary",
              "bogus_canary", "health_interval", "on_validation_failure"});
  r.String("validation_canary", dns.validation_canary);
  r.String("bogus_canary", dns.bogus_canary);
  for (const char* key : {"validation_canary", "bogus_canary"}) {
    const std::string& v =
        std::string_view(key) == "validation_canary" ? dns.validation_canary : dns.bogus_canary;
    if (r.Ok() && r.Get(key) &&
        !(v == "." || v.empty() ||
          ValidHostname(v.back() == '.' ? v.substr(0, v.size() - 1) : v))) {
      r.FailHere(key, "expected \".\" or a domain name");
    }
  }
  r.Duration("health_interval", dns.health_interval, std::chrono::seconds(1));
  std::string on_failure = "defer";
  r.String("on_validation_failure", on_failure);
  if (r.Ok() && on_failure != "defer" && on_failure != "deliver") {
    r.FailHere("on_validation_failure", "expected \"defer\" or \"deliver\"");
  }
  dns.deliver_on_validation_failure = on_failure == "deliver";
  r.Path("trust_anchor_file", dns.trust_anchor_file);
  r.Path("root_hints", dns.root_hints);
  std::chrono::seconds timeout(15);
  r.Duration("timeout", timeout, std::chrono::seconds(1));
  dns.timeout = timeout;
  r.Strings("forwarders", dns.forwarders, ForwarderProblem);
}

// [dane]
void ReadDane(Reader& r, relay::DeliveryOptions& delivery) {
  r.OnlyKeys({"mandatory_domains", "testing_domains", "preflight_interval"});
  // U-labels are welcome ("bücher.example"); they are kept in the A-label form that delivery
  // compares with (IDNA2008).
  const auto domain_entry = [](const std::string& d) {
    const std::string bare = !d.empty() && d.front() == '.' ? d.substr(1) : d;
    const auto ascii = dns::ToAsciiDomain(bare);
    if (!ascii) return "'" + d + "' is " + ascii.error();
    return ValidHostname(*ascii)
               ? std::string()
               : "'" + d + "' is not a domain (\"example.org\" or \".example.org\")";
  };
  const auto to_ascii = [](std::vector<std::string>& entries) {
    for (auto& d : entries) {
      const bool dot = !d.empty() && d.front() == '.';
      d = (dot ? "." : "") + dns::ToAsciiDomain(dot ? d.substr(1) : d).value_or(d);
    }
  };
  r.Strings("mandatory_domains", delivery.mandatory_domains, domain_entry);
  r.Strings("testing_domains", delivery.testing_domains, domain_entry);
  to_ascii(delivery.mandatory_domains);
  to_ascii(delivery.testing_domains);
  r.Duration("preflight_interval", delivery.preflight_interval, std::chrono::seconds(0),
             std::chrono::hours(24 * 7));
}

// [mta_sts]
void ReadMtaSts(Reader& r, relay::MtaStsOptions& mta_sts) {
  r.OnlyKeys({"enabled", "https_port", "fetch_timeout", "allow_special_addresses"});
  r.Bool("enabled", mta_sts.enabled);
  r.Unsigned("https_port", mta_sts.https_port, 1, 65535);
  r.Duration("fetch_timeout", mta_sts.fetch_timeout, std::chrono::seconds(1),
             std::chrono::minutes(10));
  r.Bool("allow_special_addresses", mta_sts.allow_special_addresses);
}

// [tls_rpt]
void ReadTlsRpt(Reader& r, relay::TlsRptOptions& tls_rpt) {
  r.OnlyKeys({"enabled", "organization", "contact"});
  r.Bool("enabled", tls_rpt.enabled);
  r.String("organization", tls_rpt.organization);
  r.String("contact", tls_rpt.contact);
}

// [tls]: the WebPKI trust store, which only MTA-STS uses.
void ReadTls(Reader& r, relay::MtaStsOptions& mta_sts) {
  r.OnlyKeys({"ca_file"});
  std::filesystem::path ca;
  r.Path("ca_file", ca);
  if (r.Ok() && !ca.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(ca, ec)) {
      r.FailHere("ca_file", fmt::format("'{}' is not a readable file", ca.string()));
    }
    mta_sts.ca_file = ca.string();
  }
}

// [delivery]
void ReadDelivery(Reader& r, relay::DeliveryOptions& delivery) {
  r.OnlyKeys({"enabled", "port", "max_parallel", "max_per_destination", "connect_timeout",
              "postmaster", "max_mx_hosts", "max_addresses", "source_address", "source_address6",
              "ehlo_name", "address_preference", "address_families"});
  ReadSource(r, delivery.source);
  r.Unsigned("max_mx_hosts", delivery.max_mx_hosts, 1, 100);
  r.Unsigned("max_addresses", delivery.max_addresses, 1, 100);
  r.String("postmaster", delivery.postmaster);
  if (r.Ok() && !delivery.postmaster.empty() &&
      delivery.postmaster.find('@') == std::string::npos) {
    r.FailHere("postmaster", "expected an address such as \"postmaster@example.org\"");
  }
  r.Unsigned("max_per_destination", delivery.max_per_destination, 1, 10000);
  r.Bool("enabled", delivery.enabled);
  r.Unsigned("port", delivery.port, 1, 65535);
  r.Unsigned("max_parallel", delivery.max_parallel, 1, 10000);
  r.Duration("connect_timeout", delivery.timeouts.connect, std::chrono::seconds(1));
}

// [retry]
void ReadRetry(Reader& r, queue::RetryOptions& retry) {
  r.OnlyKeys({"min_backoff", "max_backoff", "max_lifetime", "delay_warning"});
  r.Duration("min_backoff", retry.min_backoff, std::chrono::seconds(1));
  r.Duration("max_backoff", retry.max_backoff, std::chrono::seconds(1));
  // Postfix caps maximal_queue_lifetime at 100 days; so do we, with an error instead.
  r.Duration("max_lifetime", retry.max_lifetime, std::chrono::seconds(1),
             std::chrono::hours(24 * 100));
  r.Duration("delay_warning", retry.delay_warning, std::chrono::seconds(0),
             std::chrono::hours(24 * 100));
  if (r.Ok() && retry.max_backoff < retry.min_backoff) {
    r.FailHere(r.Get("max_backoff") ? "max_backoff" : "min_backoff",
               "max_backoff must not be shorter than min_backoff");
  }
}

}  // namespace danerelay::config
