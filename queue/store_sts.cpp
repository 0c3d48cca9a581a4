// The MTA-STS policy cache (RFC 8461 §5) and what TLS-RPT (RFC 8460) reads and records.
#include "queue/store_impl.hpp"

namespace danerelay::queue {

tl::expected<std::optional<Store::StsPolicyRecord>, StoreError> Store::GetStsPolicy(
    std::string_view domain) {
  auto s = impl_->Prepare("SELECT id, policy, fetched_us FROM sts_policies WHERE domain = ?1");
  if (!s) return tl::unexpected(s.error());
  sqlite3_bind_text(s->get(), 1, domain.data(), static_cast<int>(domain.size()), SQLITE_TRANSIENT);
  std::optional<StsPolicyRecord> out;
  auto r = impl_->EachRow(s->get(), "read MTA-STS policy", [&](sqlite3_stmt* st) {
    out = StsPolicyRecord{std::string(domain), ColumnText(st, 0), ColumnText(st, 1),
                          FromMicros(sqlite3_column_int64(st, 2))};
  });
  if (!r) return tl::unexpected(r.error());
  return out;
}

tl::expected<void, StoreError> Store::PutStsPolicy(const StsPolicyRecord& record) {
  auto s = impl_->Prepare(
      "INSERT INTO sts_policies (domain, id, policy, fetched_us) VALUES (?1, ?2, ?3, ?4) "
      "ON CONFLICT (domain) DO UPDATE SET id = ?2, policy = ?3, fetched_us = ?4");
  if (!s) return tl::unexpected(s.error());
  const std::string_view texts[] = {record.domain, record.id, record.policy};
  for (int i = 0; i < 3; ++i) {
    sqlite3_bind_text(s->get(), i + 1, texts[i].data(), static_cast<int>(texts[i].size()),
                      SQLITE_TRANSIENT);
  }
  sqlite3_bind_int64(s->get(), 4, ToMicros(record.fetched));
  return impl_->StepDone(s->get(), "store MTA-STS policy");
}

tl::expected<std::vector<AttemptRecord>, StoreError> Store::GetDomainSessions(
    std::string_view domain, TimePoint from, TimePoint to) {
  auto s = impl_->Prepare(
      "SELECT DISTINCT a.time_us, a.mx_host, a.ip, a.dnssec_mx, a.dnssec_address, a.dnssec_tlsa, "
      "a.tls_verdict, a.tlsa_record, a.reply, a.status, a.note, a.mta_sts FROM attempts a "
      "JOIN recipients r ON r.message_id = a.message_id AND r.idx = a.recipient_idx "
      "WHERE r.domain = ?1 AND a.time_us >= ?2 AND a.time_us < ?3 ORDER BY a.time_us");
  if (!s) return tl::unexpected(s.error());
  sqlite3_bind_text(s->get(), 1, domain.data(), static_cast<int>(domain.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int64(s->get(), 2, ToMicros(from));
  sqlite3_bind_int64(s->get(), 3, ToMicros(to));
  std::vector<AttemptRecord> out;
  auto r = impl_->EachRow(s->get(), "read sessions", [&](sqlite3_stmt* st) {
    AttemptRecord a;
    a.time = FromMicros(sqlite3_column_int64(st, 0));
    std::string* fields[] = {&a.mx_host,     &a.ip,          &a.dnssec_mx,   &a.dnssec_address,
                             &a.dnssec_tlsa, &a.tls_verdict, &a.tlsa_record, &a.reply,
                             &a.status,      &a.note,        &a.mta_sts};
    for (int i = 0; i < 11; ++i) *fields[i] = ColumnText(st, 1 + i);
    out.push_back(std::move(a));
  });
  if (!r) return tl::unexpected(r.error());
  return out;
}

tl::expected<std::vector<std::string>, StoreError> Store::GetSessionDomains(TimePoint from,
                                                                            TimePoint to) {
  auto s = impl_->Prepare(
      "SELECT DISTINCT r.domain FROM attempts a "
      "JOIN recipients r ON r.message_id = a.message_id AND r.idx = a.recipient_idx "
      "WHERE a.time_us >= ?1 AND a.time_us < ?2 ORDER BY r.domain");
  if (!s) return tl::unexpected(s.error());
  sqlite3_bind_int64(s->get(), 1, ToMicros(from));
  sqlite3_bind_int64(s->get(), 2, ToMicros(to));
  std::vector<std::string> out;
  auto r = impl_->EachRow(s->get(), "read session domains",
                          [&](sqlite3_stmt* st) { out.push_back(ColumnText(st, 0)); });
  if (!r) return tl::unexpected(r.error());
  return out;
}

tl::expected<std::vector<Store::TlsReportRecord>, StoreError> Store::GetTlsReports(TimePoint day) {
  auto s = impl_->Prepare(
      "SELECT domain, report_id, made_us, rua, outcome FROM tls_reports WHERE day_us = ?1 "
      "ORDER BY domain");
  if (!s) return tl::unexpected(s.error());
  sqlite3_bind_int64(s->get(), 1, ToMicros(day));
  std::vector<TlsReportRecord> out;
  auto r = impl_->EachRow(s->get(), "read TLS reports", [&](sqlite3_stmt* st) {
    out.push_back(TlsReportRecord{ColumnText(st, 0), day, ColumnText(st, 1),
                                  FromMicros(sqlite3_column_int64(st, 2)), ColumnText(st, 3),
                                  ColumnText(st, 4)});
  });
  if (!r) return tl::unexpected(r.error());
  return out;
}

tl::expected<void, StoreError> Store::PutTlsReport(const TlsReportRecord& record,
                                                   const NewMessage* mail) {
  return impl_->Write([&]() -> tl::expected<void, StoreError> {
    auto s = impl_->Prepare(
        "INSERT INTO tls_reports (domain, day_us, report_id, made_us, rua, outcome) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (domain, day_us) DO UPDATE SET "
        "report_id = ?3, made_us = ?4, rua = ?5, outcome = ?6");
    if (!s) return tl::unexpected(s.error());
    auto text = [&](int col, std::string_view v) {
      sqlite3_bind_text(s->get(), col, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    };
    text(1, record.domain);
    sqlite3_bind_int64(s->get(), 2, ToMicros(record.day));
    text(3, record.report_id);
    sqlite3_bind_int64(s->get(), 4, ToMicros(record.made));
    text(5, record.rua);
    text(6, record.outcome);
    if (auto r = impl_->StepDone(s->get(), "record TLS report"); !r) return r;
    if (mail) return impl_->InsertMessage(*mail);
    return {};
  });
}

tl::expected<void, StoreError> Store::PurgeTlsReports(TimePoint before) {
  return impl_->Write([&]() -> tl::expected<void, StoreError> {
    auto s = impl_->Prepare("DELETE FROM tls_reports WHERE day_us < ?1");
    if (!s) return tl::unexpected(s.error());
    sqlite3_bind_int64(s->get(), 1, ToMicros(before));
    return impl_->StepDone(s->get(), "purge TLS reports");
  });
}

}  // namespace danerelay::queue
