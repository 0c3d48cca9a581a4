#pragma once
// Internal to config/: the reader of each table of the file, one function per table. Each is
// handed the table (a Reader) and the structs it fills; LoadString calls them in turn. Values
// not in the file keep their defaults, and every problem goes to the Reader's Source.
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "config/reader.hpp"

namespace danerelay::config {

// load_server.cpp: the daemon and its SMTP server.
void ReadServer(Reader& r, relay::ServerOptions& server);
// [[listener]] is an array of tables in `root`, not a table: read from there. Any listener
// given replaces the default one.
void ReadListeners(const toml::table& root, Source& source,
                   std::vector<relay::ListenerOptions>& listeners);
void ReadLog(Reader& r, relay::LogOptions& log);
void ReadMetrics(Reader& r, relay::MetricsOptions& metrics);
void ReadAccess(Reader& r, std::vector<relay::IpNetwork>& trusted_networks);
void ReadAuth(Reader& r, relay::AuthOptions& auth);
void ReadSenderChecks(Reader& r, relay::SenderCheckOptions& sc);
void ReadPrivacy(Reader& r, relay::PrivacyOptions& p);
void ReadArchive(Reader& r, relay::ArchiveOptions& a);
void ReadLimits(Reader& r, relay::LimitsOptions& l, std::uint32_t& max_hops);

// load_quotas.cpp: [quotas], the sending quotas.
void ReadQuotas(Reader& r, relay::QuotaOptions& quotas);

// load_shaping.cpp: [shaping]; `max_per_destination_set`: [delivery] gave the old name of
// [shaping.default] connections.
// load_quotas.cpp: "5/min", "2000/h", "10000/d", "5/10s": a count, then a window of
// [N]s|min|h|d (at most 31 days); none when malformed. Quotas and [shaping] rates.
std::optional<relay::QuotaLimit> ParseRate(std::string_view text);

void ReadShaping(Reader& r, Source& source, relay::DeliveryOptions& delivery,
                 bool max_per_destination_set);

// load_delivery.cpp: the queue and delivery.
void ReadQueue(Reader& r, queue::StoreOptions& store, std::chrono::seconds& keep_completed);
void ReadDns(Reader& r, dns::ResolverOptions& dns);
void ReadDane(Reader& r, relay::DeliveryOptions& delivery);
void ReadMtaSts(Reader& r, relay::MtaStsOptions& mta_sts);
void ReadTlsRpt(Reader& r, relay::TlsRptOptions& tls_rpt);
void ReadTls(Reader& r, relay::MtaStsOptions& mta_sts);
void ReadDelivery(Reader& r, relay::DeliveryOptions& delivery);
void ReadRetry(Reader& r, queue::RetryOptions& retry);

// load_routes.cpp: routes and TLS policies; [delivery] must be read first (its source options
// are every route's defaults), and [dane] (mandatory domains cannot be weakened).
void ReadSource(Reader& r, relay::SourceOptions& source);
void ReadRoutes(Reader& r, relay::DeliveryOptions& delivery);
void ReadSenderRoutes(Reader& r, relay::DeliveryOptions& delivery);  // after [routes]
void ReadTlsPolicy(Reader& r, relay::DeliveryOptions& delivery);

// load_dkim.cpp: [dkim], after [retry] (x= must outlive max_lifetime).
// `load_keys`: every key file must load (false: only the table's syntax).
void ReadDkim(Reader& r, Source& source, relay::DkimOptions& dkim,
              std::chrono::seconds max_lifetime, bool load_keys);

}  // namespace danerelay::config
