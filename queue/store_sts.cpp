// The MTA-STS policy cache (RFC 8461 §5) and what TLS-RPT (RFC 8460) reads and records.
#include "queue/store_impl.hpp"

namespace danerelay::queue {
namespace {

// Binds ?1 to ?4 and ?6 to ?9 of a tls_report_posts statement (?5 is the payload).
void BindPost(sqlite3_stmt* s, const Store::TlsReportPost& p) {
  auto text = [&](int col, std::string_view v) {
    sqlite3_bind_text(s, col, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  };
  text(1, p.domain);
  sqlite3_bind_int64(s, 2, ToMicros(p.day));
  text(3, p.url);
  text(4, p.report_id);
  sqlite3_bind_int(s, 6, p.tries);
  sqlite3_bind_int64(s, 7, ToMicros(p.next));
  text(8, p.state);
  text(9, p.last_error);
}

// domain, day_us, url, report_id, tries, next_us, state, last_error
Store::TlsReportPost ReadPost(sqlite3_stmt* st) {
  Store::TlsReportPost p;
  p.domain = ColumnText(st, 0);
  p.day = FromMicros(sqlite3_column_int64(st, 1));
  p.url = ColumnText(st, 2);
  p.report_id = ColumnText(st, 3);
  p.tries = sqlite3_column_int(st, 4);
  p.next = FromMicros(sqlite3_column_int64(st, 5));
  p.state = ColumnText(st, 6);
  p.last_error = ColumnText(st, 7);
  return p;
}

}  // namespace

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
  // The attempt columns as they are named in the join: "a.time_us, a.mx_host, ...".
  static const std::string kSelect = [] {
    std::string columns;
    std::string_view rest = kAttemptColumns;
    while (!rest.empty()) {
      const auto comma = rest.find(", ");
      columns += fmt::format("{}a.{}", columns.empty() ? "" : ", ", rest.substr(0, comma));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 2);
    }
    return fmt::format(
        "SELECT DISTINCT {} FROM attempts a "
        "JOIN recipients r ON r.message_id = a.message_id AND r.idx = a.recipient_idx "
        "JOIN messages m ON m.id = a.message_id "
        "WHERE r.domain = ?1 AND a.time_us >= ?2 AND a.time_us < ?3 AND m.tls_report = 0 "
        "ORDER BY a.time_us",
        columns);
  }();
  auto s = impl_->Prepare(kSelect.c_str());
  if (!s) return tl::unexpected(s.error());
  sqlite3_bind_text(s->get(), 1, domain.data(), static_cast<int>(domain.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int64(s->get(), 2, ToMicros(from));
  sqlite3_bind_int64(s->get(), 3, ToMicros(to));
  std::vector<AttemptRecord> out;
  auto r = impl_->EachRow(s->get(), "read sessions",
                          [&](sqlite3_stmt* st) { out.push_back(ReadAttempt(st, 0)); });
  if (!r) return tl::unexpected(r.error());
  return out;
}

tl::expected<std::vector<std::string>, StoreError> Store::GetSessionDomains(TimePoint from,
                                                                            TimePoint to) {
  auto s = impl_->Prepare(
      "SELECT DISTINCT r.domain FROM attempts a "
      "JOIN recipients r ON r.message_id = a.message_id AND r.idx = a.recipient_idx "
      "JOIN messages m ON m.id = a.message_id "
      "WHERE a.time_us >= ?1 AND a.time_us < ?2 AND m.tls_report = 0 ORDER BY r.domain");
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
                                                   const NewMessage* mail,
                                                   const std::vector<TlsReportPost>& posts) {
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
    for (const TlsReportPost& p : posts) {
      auto ps = impl_->Prepare(
          "INSERT INTO tls_report_posts (domain, day_us, url, report_id, payload, tries, next_us, "
          "state, last_error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
      if (!ps) return tl::unexpected(ps.error());
      BindPost(ps->get(), p);
      sqlite3_bind_blob64(ps->get(), 5, p.payload.data(), p.payload.size(), SQLITE_STATIC);
      if (auto r = impl_->StepDone(ps->get(), "record TLS report POST"); !r) return r;
    }
    if (mail) return impl_->InsertMessage(*mail);
    return {};
  });
}

tl::expected<std::vector<Store::TlsReportPost>, StoreError> Store::GetDueTlsReportPosts(
    TimePoint now) {
  auto s = impl_->Prepare(
      "SELECT domain, day_us, url, report_id, tries, next_us, state, last_error, payload "
      "FROM tls_report_posts WHERE state = 'pending' AND next_us <= ?1 ORDER BY next_us");
  if (!s) return tl::unexpected(s.error());
  sqlite3_bind_int64(s->get(), 1, ToMicros(now));
  std::vector<TlsReportPost> out;
  auto r = impl_->EachRow(s->get(), "read due TLS report POSTs", [&](sqlite3_stmt* st) {
    out.push_back(ReadPost(st));
    const auto* blob = static_cast<const char*>(sqlite3_column_blob(st, 8));
    out.back().payload.assign(blob ? blob : "", static_cast<size_t>(sqlite3_column_bytes(st, 8)));
  });
  if (!r) return tl::unexpected(r.error());
  return out;
}

tl::expected<std::optional<TimePoint>, StoreError> Store::NextTlsReportPost() {
  auto s = impl_->Prepare("SELECT min(next_us) FROM tls_report_posts WHERE state = 'pending'");
  if (!s) return tl::unexpected(s.error());
  std::optional<TimePoint> out;
  auto r = impl_->EachRow(s->get(), "read the next TLS report POST", [&](sqlite3_stmt* st) {
    if (sqlite3_column_type(st, 0) != SQLITE_NULL) {
      out = FromMicros(sqlite3_column_int64(st, 0));
    }
  });
  if (!r) return tl::unexpected(r.error());
  return out;
}

tl::expected<std::vector<Store::TlsReportPost>, StoreError> Store::GetTlsReportPosts(
    TimePoint day) {
  auto s = impl_->Prepare(
      "SELECT domain, day_us, url, report_id, tries, next_us, state, last_error "
      "FROM tls_report_posts WHERE day_us = ?1 ORDER BY domain, url");
  if (!s) return tl::unexpected(s.error());
  sqlite3_bind_int64(s->get(), 1, ToMicros(day));
  std::vector<TlsReportPost> out;
  auto r = impl_->EachRow(s->get(), "read TLS report POSTs",
                          [&](sqlite3_stmt* st) { out.push_back(ReadPost(st)); });
  if (!r) return tl::unexpected(r.error());
  return out;
}

tl::expected<void, StoreError> Store::UpdateTlsReportPost(const TlsReportPost& post) {
  return impl_->Write([&]() -> tl::expected<void, StoreError> {
    auto s = impl_->Prepare(
        "UPDATE tls_report_posts SET report_id = ?4, tries = ?6, next_us = ?7, state = ?8, "
        "last_error = ?9, payload = CASE WHEN ?8 = 'pending' THEN payload END "
        "WHERE domain = ?1 AND day_us = ?2 AND url = ?3");
    if (!s) return tl::unexpected(s.error());
    BindPost(s->get(), post);
    return impl_->StepDone(s->get(), "update TLS report POST");
  });
}

tl::expected<void, StoreError> Store::PurgeTlsReports(TimePoint before) {
  return impl_->Write([&]() -> tl::expected<void, StoreError> {
    for (const char* sql : {"DELETE FROM tls_reports WHERE day_us < ?1",
                            "DELETE FROM tls_report_posts WHERE day_us < ?1"}) {
      auto s = impl_->Prepare(sql);
      if (!s) return tl::unexpected(s.error());
      sqlite3_bind_int64(s->get(), 1, ToMicros(before));
      if (auto r = impl_->StepDone(s->get(), "purge TLS reports"); !r) return r;
    }
    return {};
  });
}

}  // namespace danerelay::queue
