// The MTA-STS policy cache (RFC 8461 §5).
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

}  // namespace danerelay::queue
