// The operator's side of the store: selections of recipients, and what the command line does
// to them (list, flush, hold, release, delete, bounce) plus statistics.
#include <algorithm>

#include "queue/store_impl.hpp"

namespace danerelay::queue {
namespace {

// A SELECT of (message_id, idx) for `s`, restricted to recipients in `states` (SQL list).
// Parameters: ?1 ids as a JSON array, ?2 domain, ?3 sender, ?4 state, ?5 arrived before (µs).
// CROSS JOIN fixes the loop order, so that the most selective index drives: a domain through
// recipients_domain, an age through messages_pending (expiry runs every second and must cost
// what it finds, not what is queued).
std::string SelectionSql(const Store::Selection& s, std::string_view states) {
  // A domain that picks messages drives through the domain index in its subquery.
  const bool by_recipient =
      s.domain.empty() ? s.ids.empty() && !s.arrived_before : !s.domain_picks_messages;
  std::string sql =
      fmt::format("SELECT r.message_id, r.idx FROM {} WHERE {}",
                  by_recipient ? "recipients r CROSS JOIN messages m ON m.id = r.message_id"
                               : "messages m CROSS JOIN recipients r ON r.message_id = m.id",
                  s.include_completed ? "TRUE" : "m.completed_us IS NULL");
  if (!states.empty()) sql += fmt::format(" AND r.state IN ({})", states);
  if (!s.ids.empty()) sql += " AND m.id IN (SELECT value FROM json_each(?1))";
  if (!s.domain.empty()) {
    sql += s.domain_picks_messages
               ? " AND m.id IN (SELECT message_id FROM recipients WHERE domain = lower(?2))"
               : " AND r.domain = lower(?2)";
  }
  if (!s.sender.empty()) sql += " AND m.sender = ?3";
  if (s.state) sql += " AND r.state = ?4";
  if (s.arrived_before) sql += " AND m.arrival_us < ?5";
  if (!s.recipient.empty()) sql += " AND r.address = ?6";
  if (s.skip_in_flight) {
    sql +=
        // "+": through the primary key, not by walking every attempting recipient.
        " AND NOT EXISTS (SELECT 1 FROM recipients a WHERE a.message_id = m.id AND "
        "+a.state = 'attempting')";
  }
  return sql;
}

std::string JsonArray(const std::vector<std::string>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : ids[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "]";
}

// Binds the parameters of SelectionSql(s, ...) to `st`.
void BindSelection(sqlite3_stmt* st, const Store::Selection& s) {
  const std::string ids = JsonArray(s.ids);
  const std::string sender = s.sender == "<>" ? "" : s.sender;
  sqlite3_bind_text(st, 1, ids.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, s.domain.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 3, sender.c_str(), -1, SQLITE_TRANSIENT);
  if (s.state) {
    sqlite3_bind_text(st, 4, std::string(ToString(*s.state)).c_str(), -1, SQLITE_TRANSIENT);
  }
  if (s.arrived_before) sqlite3_bind_int64(st, 5, ToMicros(*s.arrived_before));
  if (!s.recipient.empty()) sqlite3_bind_text(st, 6, s.recipient.c_str(), -1, SQLITE_TRANSIENT);
}

}  // namespace

tl::expected<std::vector<MessageInfo>, StoreError> Store::ListMessages(const Selection& s) {
  using Messages = std::vector<MessageInfo>;
  return impl_->Read<Messages>([&]() -> tl::expected<Messages, StoreError> {
    auto sel = impl_->Prepare((SelectionSql(s, "") + " ORDER BY r.message_id, r.idx").c_str());
    auto msg = impl_->Prepare(
        fmt::format("SELECT {} FROM messages WHERE id = ?1", kMessageColumns).c_str());
    auto rcpt =
        impl_->Prepare(fmt::format("SELECT {} FROM recipients WHERE message_id = ?1 AND idx = ?2",
                                   kRecipientColumns)
                           .c_str());
    if (!sel || !msg || !rcpt) return tl::unexpected(impl_->Err("prepare list"));
    BindSelection(sel->get(), s);
    Messages out;
    std::optional<StoreError> error;
    // Each selected (message, recipient) in order: a new message's row, then the recipient's.
    const auto read = [&](sqlite3_stmt* st, const std::string& id, int idx) {
      sqlite3_reset(st);
      sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
      if (idx >= 0) sqlite3_bind_int(st, 2, idx);
      if (sqlite3_step(st) == SQLITE_ROW) return true;
      if (!error) error = impl_->Err("list messages");
      return false;
    };
    auto listed = impl_->EachRow(sel->get(), "list messages", [&](sqlite3_stmt* st) {
      const std::string id = ColumnText(st, 0);
      if (error) return;
      if ((out.empty() || out.back().id != id) && read(msg->get(), id, -1)) {
        out.push_back(Impl::ReadMessageRow(msg->get()));
      }
      if (!error && read(rcpt->get(), id, sqlite3_column_int(st, 1))) {
        out.back().recipients.push_back(Impl::ReadRecipientRow(rcpt->get()));
      }
    });
    if (!listed) return tl::unexpected(listed.error());
    if (error) return tl::unexpected(*error);
    return out;
  });
}

// Runs `apply` (an UPDATE/DELETE using the temp table `sel(message_id, idx)`) in a transaction.
static tl::expected<Store::Touched, StoreError> Apply(
    Store::Impl& impl, const Store::Selection& s, std::string_view states,
    const std::function<tl::expected<void, StoreError>(Store::Touched&)>& apply) {
  return impl.Write([&]() -> tl::expected<Store::Touched, StoreError> {
    // Keyed, so the per-message steps (Finish) find a message's selected recipients directly.
    if (auto r = impl.Exec("CREATE TEMP TABLE IF NOT EXISTS sel (message_id TEXT, idx INTEGER, "
                           "PRIMARY KEY (message_id, idx)) WITHOUT ROWID; DELETE FROM sel;");
        !r) {
      return tl::unexpected(r.error());
    }
    auto fill = impl.Prepare(("INSERT INTO sel " + SelectionSql(s, states)).c_str());
    if (!fill) return tl::unexpected(fill.error());
    BindSelection(fill->get(), s);
    if (auto r = impl.StepDone(fill->get(), "select"); !r) return tl::unexpected(r.error());
    Store::Touched t;
    auto ids_stmt = impl.Prepare("SELECT DISTINCT message_id FROM sel ORDER BY message_id");
    if (!ids_stmt) return tl::unexpected(ids_stmt.error());
    auto listed = impl.EachRow(ids_stmt->get(), "selected messages",
                               [&](sqlite3_stmt* st) { t.messages.push_back(ColumnText(st, 0)); });
    if (!listed) return tl::unexpected(listed.error());
    auto count = impl.Prepare("SELECT COUNT(*) FROM sel");
    if (!count || sqlite3_step(count->get()) != SQLITE_ROW) {
      return tl::unexpected(impl.Err("count"));
    }
    t.recipients = sqlite3_column_int(count->get(), 0);
    if (auto r = apply(t); !r) return tl::unexpected(r.error());
    if (s.by) {
      auto log = impl.Prepare(
          "INSERT INTO operator_log (time_us, message_id, action, user, notice_id) "
          "VALUES (?1, ?2, ?3, ?4, ?5)");
      if (!log) return tl::unexpected(log.error());
      const auto now = ToMicros(Clock::now());
      for (const auto& id : t.messages) {
        std::string notice;
        for (const auto& f : t.finished) {
          if (f.message_id == id) notice = f.notice_id;
        }
        sqlite3_reset(log->get());
        sqlite3_bind_int64(log->get(), 1, now);
        sqlite3_bind_text(log->get(), 2, id.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(log->get(), 3, s.by->action.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(log->get(), 4, s.by->user.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(log->get(), 5, notice.c_str(), -1, SQLITE_TRANSIENT);
        if (auto r = impl.StepDone(log->get(), "operator log"); !r) {
          return tl::unexpected(r.error());
        }
      }
    }
    return t;
  });
}

static tl::expected<void, StoreError> Run(Store::Impl& impl, const char* sql,
                                          std::optional<std::int64_t> param = std::nullopt) {
  auto st = impl.Prepare(sql);
  if (!st) return tl::unexpected(st.error());
  if (param) sqlite3_bind_int64(st->get(), 1, *param);
  return impl.StepDone(st->get(), sql);
}

constexpr const char* kInSel = "(message_id, idx) IN (SELECT message_id, idx FROM sel)";

tl::expected<Store::Touched, StoreError> Store::Flush(const Selection& s, TimePoint now) {
  return Apply(*impl_, s, "'queued', 'deferred'", [&](Touched&) {
    return Run(*impl_,
               fmt::format("UPDATE recipients SET next_attempt_us = ?1 WHERE {}", kInSel).c_str(),
               ToMicros(now));
  });
}

tl::expected<Store::Touched, StoreError> Store::Hold(const Selection& s) {
  return Apply(*impl_, s, "'queued', 'deferred'", [&](Touched&) {
    return Run(*impl_,
               fmt::format("UPDATE recipients SET state = 'held' WHERE {}", kInSel).c_str());
  });
}

tl::expected<Store::Touched, StoreError> Store::Release(const Selection& s, TimePoint now) {
  return Apply(*impl_, s, "'held'", [&](Touched&) {
    return Run(
        *impl_,
        fmt::format("UPDATE recipients SET state = 'deferred', next_attempt_us = ?1 WHERE {}",
                    kInSel)
            .c_str(),
        ToMicros(now));
  });
}

tl::expected<Store::Touched, StoreError> Store::Delete(const Selection& s) {
  return Apply(*impl_, s, "", [&](Touched&) {
    // ON DELETE CASCADE takes the recipients and the attempts along.
    return Run(*impl_, "DELETE FROM messages WHERE id IN (SELECT message_id FROM sel)");
  });
}

tl::expected<Store::Touched, StoreError> Store::Finish(const Selection& s,
                                                       RecipientState final_state,
                                                       const std::string& status,
                                                       const std::string& reply, Cause cause,
                                                       TimePoint now, const NoticeFn& notice) {
  // The operator's bounce takes recipients in delivery too: their outcome, when it comes, finds
  // them final and is dropped (delivery_agent.cpp). Expiry leaves them to that outcome.
  const std::string_view selected_recipient_states =
      s.skip_in_flight ? "'queued', 'deferred', 'held'"
                       : "'queued', 'deferred', 'held', 'attempting'";
  return Apply(
      *impl_, s, selected_recipient_states, [&](Touched& t) -> tl::expected<void, StoreError> {
        auto upd = impl_->Prepare(
            // An empty status keeps the last one (expiry keeps the last transient code, as
            // Postfix does); 4.4.7 (RFC 3463: delivery time expired) when there was none.
            "UPDATE recipients SET state = ?2, next_attempt_us = NULL, "
            "last_status = CASE WHEN ?3 <> '' THEN ?3 WHEN last_status <> '' THEN last_status "
            "ELSE '4.4.7' END, "
            "last_reply = CASE WHEN ?4 <> '' THEN ?4 WHEN last_reply <> '' THEN last_reply "
            "ELSE 'message expired in the queue' END, "
            // A reply of ours (the operator's bounce, or the expiry's when there was none)
            // is no remote's.
            "last_reply_remote = CASE WHEN ?4 <> '' OR last_reply = '' THEN 0 "
            "ELSE last_reply_remote END, "
            "last_cause = CASE WHEN ?5 <> '' THEN ?5 ELSE last_cause END "
            "WHERE message_id = ?1 AND idx IN (SELECT idx FROM sel WHERE sel.message_id = ?1)");
        auto msg = impl_->Prepare(
            fmt::format("SELECT {}, c.data FROM messages m JOIN contents c ON c.message_id = m.id "
                        "WHERE m.id = ?1",
                        kMessageColumns)
                .c_str());
        auto rcpts = impl_->Prepare(
            fmt::format("SELECT {} FROM recipients WHERE message_id = ?1 AND idx IN "
                        "(SELECT idx FROM sel WHERE sel.message_id = ?1) ORDER BY idx",
                        kRecipientColumns)
                .c_str());
        auto done = impl_->Prepare(
            "UPDATE messages SET completed_us = ?2 WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM "
            "recipients WHERE message_id = ?1 AND state NOT IN ('delivered', 'failed', "
            "'expired'))");
        if (!upd || !msg || !rcpts || !done) return tl::unexpected(impl_->Err("prepare finish"));
        for (const auto& id : t.messages) {
          for (sqlite3_stmt* st : {upd->get(), msg->get(), rcpts->get(), done->get()}) {
            sqlite3_reset(st);
            sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
          }
          sqlite3_bind_text(upd->get(), 2, std::string(ToString(final_state)).c_str(), -1,
                            SQLITE_TRANSIENT);
          sqlite3_bind_text(upd->get(), 3, status.c_str(), -1, SQLITE_TRANSIENT);
          sqlite3_bind_text(upd->get(), 4, reply.c_str(), -1, SQLITE_TRANSIENT);
          sqlite3_bind_text(upd->get(), 5, std::string(Token(cause)).c_str(), -1, SQLITE_TRANSIENT);
          if (auto r = impl_->StepDone(upd->get(), "finish"); !r) return r;
          const int found = sqlite3_step(msg->get());
          if (found == SQLITE_DONE) continue;
          if (found != SQLITE_ROW) return tl::unexpected(impl_->Err("finish: read message"));
          const MessageInfo info = Impl::ReadMessageRow(msg->get());
          // The content follows the kMessageColumns.
          const int at = kMessageColumnCount;
          const auto* data = static_cast<const char*>(sqlite3_column_blob(msg->get(), at));
          const std::string content(data ? data : "",
                                    static_cast<size_t>(sqlite3_column_bytes(msg->get(), at)));
          std::vector<StoredRecipient> finished;
          auto read = impl_->EachRow(
              rcpts->get(), "finish: read recipients",
              [&](sqlite3_stmt* st) { finished.push_back(Impl::ReadRecipientRow(st)); });
          if (!read) return read;
          Touched::Finished ended{id, info.sender, ""};
          if (auto n = notice(info, content, finished)) {
            if (auto r = impl_->InsertMessage(*n); !r) return r;
            ended.notice_id = n->id;
          }
          t.finished.push_back(std::move(ended));
          sqlite3_bind_int64(done->get(), 2, ToMicros(now));
          if (auto r = impl_->StepDone(done->get(), "complete"); !r) return r;
        }
        return {};
      });
}

tl::expected<Store::Stats, StoreError> Store::GetStats(size_t top) {
  // Counts through covering indexes (recipients_due, messages_pending, recipients_domain): no
  // message row and no content is read.
  return impl_->Read<Stats>([&]() -> tl::expected<Stats, StoreError> {
    Stats st;
    auto states = impl_->Prepare(
        "SELECT state, COUNT(*) FROM recipients "
        "WHERE state IN ('queued', 'deferred', 'attempting', 'held') GROUP BY state");
    auto msgs =
        impl_->Prepare("SELECT COUNT(*), MIN(arrival_us) FROM messages WHERE completed_us IS NULL");
    // INDEXED BY: left to itself the planner walks recipients_due and reads every pending row
    // for its domain (0.25 s per 100,000); the domain index covers the query.
    auto domains = impl_->Prepare(
        "SELECT domain, COUNT(*) AS n FROM recipients INDEXED BY recipients_domain "
        "WHERE state IN ('queued', 'deferred', 'attempting', 'held') GROUP BY domain "
        "ORDER BY n DESC, domain LIMIT ?1");
    if (!states) return tl::unexpected(states.error());
    if (!msgs) return tl::unexpected(msgs.error());
    if (!domains) return tl::unexpected(domains.error());
    auto r = impl_->EachRow(states->get(), "stats: states", [&](sqlite3_stmt* s) {
      st.recipients_by_state[ColumnText(s, 0)] = sqlite3_column_int(s, 1);
    });
    if (!r) return tl::unexpected(r.error());
    if (sqlite3_step(msgs->get()) != SQLITE_ROW) return tl::unexpected(impl_->Err("stats"));
    st.messages = sqlite3_column_int(msgs->get(), 0);
    if (sqlite3_column_type(msgs->get(), 1) != SQLITE_NULL) {
      st.oldest_arrival = FromMicros(sqlite3_column_int64(msgs->get(), 1));
    }
    sqlite3_bind_int64(domains->get(), 1, static_cast<sqlite3_int64>(top));
    r = impl_->EachRow(domains->get(), "stats: domains", [&](sqlite3_stmt* s) {
      st.top_domains.emplace_back(ColumnText(s, 0), sqlite3_column_int(s, 1));
    });
    if (!r) return tl::unexpected(r.error());
    return st;
  });
}

tl::expected<std::vector<std::array<int, Store::kShapeBuckets>>, StoreError> Store::GetShape(
    const std::vector<std::string>& domains, TimePoint now) {
  return impl_->Read<std::vector<std::array<int, kShapeBuckets>>>(
      [&]() -> tl::expected<std::vector<std::array<int, kShapeBuckets>>, StoreError> {
        // One domain at a time through its index, each pending recipient's message arrival.
        auto q = impl_->Prepare(
            "SELECT m.arrival_us FROM recipients r INDEXED BY recipients_domain "
            "JOIN messages m ON m.id = r.message_id "
            "WHERE r.domain = ?1 AND r.state IN ('queued', 'deferred', 'attempting', 'held')");
        if (!q) return tl::unexpected(q.error());
        std::vector<std::array<int, kShapeBuckets>> out;
        for (const auto& d : domains) {
          std::array<int, kShapeBuckets> counts{};
          sqlite3_reset(q->get());
          sqlite3_bind_text(q->get(), 1, d.data(), static_cast<int>(d.size()), SQLITE_TRANSIENT);
          auto r = impl_->EachRow(q->get(), "stats: shape", [&](sqlite3_stmt* s) {
            const auto minutes = std::chrono::duration_cast<std::chrono::minutes>(
                                     now - FromMicros(sqlite3_column_int64(s, 0)))
                                     .count();
            int b = 0;
            for (long long limit = 5; b < kShapeBuckets - 1 && minutes >= limit; limit *= 2) ++b;
            ++counts[b];
          });
          if (!r) return tl::unexpected(r.error());
          out.push_back(counts);
        }
        return out;
      });
}

tl::expected<Store::SiteCounts, StoreError> Store::GetSites(size_t top) {
  return impl_->Read<SiteCounts>([&]() -> tl::expected<SiteCounts, StoreError> {
    // A covering scan of recipients_site(site, state), as the domains' of recipients_domain;
    // the groups come out in site order, and there are far fewer sites than recipients.
    auto q = impl_->Prepare(
        "SELECT site, COUNT(*) FROM recipients INDEXED BY recipients_site "
        "WHERE state IN ('queued', 'deferred') GROUP BY site");
    if (!q) return tl::unexpected(q.error());
    SiteCounts out;
    std::vector<std::pair<std::string, int>> sites;
    auto r = impl_->EachRow(q->get(), "stats: sites", [&](sqlite3_stmt* s) {
      std::string site = ColumnText(s, 0);
      const int n = sqlite3_column_int(s, 1);
      if (site.empty()) {
        out.unknown = n;
      } else {
        sites.emplace_back(std::move(site), n);
      }
    });
    if (!r) return tl::unexpected(r.error());
    const auto shown = sites.begin() + static_cast<std::ptrdiff_t>(std::min(top, sites.size()));
    std::partial_sort(sites.begin(), shown, sites.end(), [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    for (auto it = shown; it != sites.end(); ++it) {
      ++out.more_sites;
      out.more_recipients += it->second;
    }
    sites.erase(shown, sites.end());
    out.top = std::move(sites);
    return out;
  });
}

tl::expected<bool, StoreError> Store::KnowsSite(std::string_view site) {
  return impl_->Read<bool>([&]() -> tl::expected<bool, StoreError> {
    // recipients_site(site, state) answers the first; the attempts are scanned only without it.
    auto q = impl_->Prepare(
        "SELECT EXISTS (SELECT 1 FROM recipients WHERE site = ?1) OR "
        "EXISTS (SELECT 1 FROM attempts WHERE site = ?1)");
    if (!q) return tl::unexpected(q.error());
    sqlite3_bind_text(q->get(), 1, site.data(), static_cast<int>(site.size()), SQLITE_TRANSIENT);
    bool known = false;
    auto r = impl_->EachRow(q->get(), "known site",
                            [&](sqlite3_stmt* s) { known = sqlite3_column_int(s, 0) != 0; });
    if (!r) return tl::unexpected(r.error());
    return known;
  });
}

tl::expected<std::vector<Store::OperatorEntry>, StoreError> Store::TakeOperatorLog(size_t limit) {
  using Entries = std::vector<OperatorEntry>;
  auto found = impl_->Read<Entries>([&]() -> tl::expected<Entries, StoreError> {
    auto q = impl_->Prepare(
        "SELECT id, time_us, message_id, action, user, notice_id FROM operator_log ORDER BY id "
        "LIMIT ?1");
    if (!q) return tl::unexpected(q.error());
    sqlite3_bind_int64(q->get(), 1, static_cast<sqlite3_int64>(limit));
    Entries out;
    auto r = impl_->EachRow(q->get(), "operator log", [&](sqlite3_stmt* st) {
      out.push_back({sqlite3_column_int64(st, 0), FromMicros(sqlite3_column_int64(st, 1)),
                     ColumnText(st, 2), ColumnText(st, 3), ColumnText(st, 4), ColumnText(st, 5)});
    });
    if (!r) return tl::unexpected(r.error());
    return out;
  });
  if (!found || found->empty()) return found;
  auto taken = impl_->Write([&]() -> tl::expected<void, StoreError> {
    return Run(*impl_, "DELETE FROM operator_log WHERE id <= ?1", found->back().id);
  });
  if (!taken) return tl::unexpected(taken.error());
  return found;
}

}  // namespace danerelay::queue
