#pragma once
// The durable queue: one SQLite database in WAL mode with synchronous=FULL.
//
// A Store is a connection; it is not thread-safe (one thread uses it at a time). The daemon's
// writes go through a Committer (committer.hpp), which batches concurrent sessions into one
// transaction. The command line opens its own read-only Store while the daemon runs.
// This is the only place that includes <sqlite3.h>.
#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "queue/message.hpp"

namespace danerelay::queue {

struct StoreOptions {
  std::filesystem::path path = "data";  // directory that holds queue.db
};

struct StoreError {
  std::string message;
  int code = 0;  // SQLite's primary result code when SQLite said it (0: not SQLite's error)
};

// Whether trying the same write again later may succeed: a busy, full or failing disk, a lock.
// A constraint, a corrupt file or a misuse fails the same way each time. An error that is not
// SQLite's (a group commit lost to another item's failure) may pass next time.
bool IsTransient(const StoreError& e);
// SQLITE_FULL: the disk (or the file system's quota) is full.
bool IsDiskFull(const StoreError& e);

// kReadWrite: the daemon's open, which creates the database and migrates its schema.
// kReadWriteExisting: the command line's changes (hold, flush, ...): the database must exist
// with this build's schema; it never creates or migrates (a running daemon of another version
// would not understand the result). kReadOnly: inspection.
enum class OpenMode { kReadWrite, kReadWriteExisting, kReadOnly };

class Store {
 public:
  // kReadWrite creates the directory and the database and migrates the schema; the other modes
  // fail when the database does not exist or has another schema than this build.
  static tl::expected<std::unique_ptr<Store>, StoreError> Open(const StoreOptions& options,
                                                               OpenMode mode);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  static constexpr int kSchemaVersion = 18;
  static std::filesystem::path DatabasePath(const StoreOptions& options);

  // Inserts the messages in one transaction, so one commit (one fsync) covers the batch.
  // Returns one result per message: a message that cannot be stored (a duplicate ID, say) is
  // rolled back alone. When the commit itself fails, every message gets the error.
  std::vector<tl::expected<void, StoreError>> InsertBatch(std::span<const NewMessage* const> batch);

  // A write that joins a group commit: it runs inside CommitBatch's transaction (the store's
  // own write methods notice that and do not open one of their own).
  using WriteJob = std::function<tl::expected<void, StoreError>(Store&)>;
  struct BatchResult {
    std::vector<tl::expected<void, StoreError>> messages;
    std::vector<tl::expected<void, StoreError>> jobs;
  };
  // Inserts the messages and runs the jobs in one transaction: one commit, one fsync. Each item
  // has its own savepoint, so one failure costs only itself; when SQLite rolls the whole
  // transaction back, the batch is redone without the item that caused it. A job may run more
  // than once: it must assign its outputs, not append to them.
  BatchResult CommitBatch(std::span<const NewMessage* const> messages,
                          std::span<const WriteJob* const> jobs);

  tl::expected<std::optional<MessageInfo>, StoreError> GetMessage(std::string_view id);
  tl::expected<std::optional<std::string>, StoreError> GetContent(std::string_view id);

  int schema_version() const;

  // The delivery side (store_delivery.cpp). All of these run on the daemon's writer thread.

  // Marks up to `limit` messages' due recipients (queued or deferred, next attempt <= now) as
  // attempting and returns them, earliest due first; each message with only its due
  // recipients. Its cost is bounded by `limit`, whatever the size of the queue.
  tl::expected<std::vector<MessageInfo>, StoreError> ClaimDue(TimePoint now, size_t limit);
  // At startup: recipients left "attempting" by a crash become due again.
  tl::expected<int, StoreError> ReleaseAttempting(TimePoint now);
  // Deferred recipients whose last failure had `cause` become due `now` (mail deferred only
  // because DNSSEC validation did not work, once it works again).
  // Returns how many. Walks the deferred recipients (index recipients_due), not the queue.
  tl::expected<int, StoreError> MakeDeferredDue(Cause cause, TimePoint now);
  // The earliest next attempt of any queued or deferred recipient (an index lookup).
  tl::expected<std::optional<TimePoint>, StoreError> NextDue();
  // The arrival of the oldest message that is not completed (an index lookup).
  tl::expected<std::optional<TimePoint>, StoreError> OldestPending();
  // Whether another connection (the command line) has changed the database since the last
  // call: PRAGMA data_version, so the daemon notices within its next tick without a scan.
  tl::expected<bool, StoreError> ChangedElsewhere();
  // One transaction: the recipients' new states, the attempts that led to them, and the
  // notices (bounces, delay warnings) they cause, so that a crash loses neither. A message whose
  // recipients are all final (delivered, failed, expired) is marked completed (kept for
  // `queue show` until purged).
  tl::expected<void, StoreError> RecordDelivery(std::string_view message_id,
                                                const std::vector<RecipientUpdate>& updates,
                                                const std::vector<AttemptRecord>& attempts,
                                                const std::vector<NewMessage>& notices,
                                                TimePoint now, bool* completed = nullptr);
  tl::expected<std::vector<AttemptRecord>, StoreError> GetAttempts(std::string_view message_id);

  // The MTA-STS policy cache (RFC 8461 §5): the last policy fetched for each domain, kept
  // across restarts. The policy text is stored as fetched; relay/ parses it.
  struct StsPolicyRecord {
    std::string domain;
    std::string id;      // the TXT record's id it was fetched under
    std::string policy;  // the policy file
    TimePoint fetched;
  };
  tl::expected<std::optional<StsPolicyRecord>, StoreError> GetStsPolicy(std::string_view domain);
  tl::expected<void, StoreError> PutStsPolicy(const StsPolicyRecord& record);

  // The recipients of a message that are still "attempting" (what an outcome may still write);
  // nullopt when the message is gone (the operator deleted it, or it was purged).
  tl::expected<std::optional<std::vector<int>>, StoreError> AttemptingRecipients(
      std::string_view message_id);

  // TLS-RPT (RFC 8460): the delivery attempts to recipients in `domain` in [from, to), oldest
  // first; the attempts of one connection share AttemptRecord::session. Those of TLS-RPT report
  // mails are left out (RFC 8460 §5.3: not in the next report).
  tl::expected<std::vector<AttemptRecord>, StoreError> GetDomainSessions(std::string_view domain,
                                                                         TimePoint from,
                                                                         TimePoint to);
  // The recipient domains with delivery sessions in [from, to) (a scan of those attempts),
  // report mails' not counted.
  tl::expected<std::vector<std::string>, StoreError> GetSessionDomains(TimePoint from,
                                                                       TimePoint to);
  // The reports made for the UTC day starting at `day` (any domain when `domain` is empty).
  struct TlsReportRecord {
    std::string domain;
    TimePoint day;
    std::string report_id;
    TimePoint made;
    std::string rua;      // the URIs it was sent to, space-separated ("": none published)
    std::string outcome;  // what became of it, for the operator
  };
  tl::expected<std::vector<TlsReportRecord>, StoreError> GetTlsReports(TimePoint day);
  // One https: POST of a report (RFC 8460 §5.4): pending until it was taken or given up.
  struct TlsReportPost {
    std::string domain;
    TimePoint day;
    std::string url;
    std::string report_id;
    std::string payload;  // the gzipped report; read only for due posts
    int tries = 0;
    TimePoint next;                 // pending: the next try
    std::string state = "pending";  // "pending", "posted" or "failed"
    std::string last_error;
  };
  // Records a report, queues `mail` (its mailto: copy) and adds its POSTs in one transaction,
  // so that a crash neither loses nor repeats them. A record is replaced, posts are not.
  tl::expected<void, StoreError> PutTlsReport(const TlsReportRecord& record,
                                              const NewMessage* mail = nullptr,
                                              const std::vector<TlsReportPost>& posts = {});
  // The pending POSTs due at `now`, with their payload.
  tl::expected<std::vector<TlsReportPost>, StoreError> GetDueTlsReportPosts(TimePoint now);
  // When the next pending POST is due, if any.
  tl::expected<std::optional<TimePoint>, StoreError> NextTlsReportPost();
  // The POSTs of the reports of one day, without payload (`danerelay tls-rpt list`).
  tl::expected<std::vector<TlsReportPost>, StoreError> GetTlsReportPosts(TimePoint day);
  // Writes a POST's tries, next, state and last_error; the payload is dropped once it is no
  // longer pending.
  tl::expected<void, StoreError> UpdateTlsReportPost(const TlsReportPost& post);
  // Drops the records (and POSTs) of days before `before`.
  tl::expected<void, StoreError> PurgeTlsReports(TimePoint before);
  // Deletes up to `limit` completed messages older than `before`; returns how many.
  tl::expected<int, StoreError> PurgeCompleted(TimePoint before, int limit = 1000);

  // The operator's side (store_admin.cpp), used by the command line with or without the daemon.
  // Every operation is one transaction and returns the messages it touched.
  struct Selection {
    std::vector<std::string> ids;  // empty: any
    std::string domain;            // recipient domain, case-insensitive
    std::string sender;            // exact envelope sender ("<>" for the null sender)
    std::optional<RecipientState> state;
    std::optional<TimePoint> arrived_before;  // --older-than
    std::string recipient;                    // exact address (`queue list --recipient`)
    // Messages whose recipients are all final too (the actions never select those).
    bool include_completed = false;
    // `domain` picks messages, those with a recipient there in any state, and the other
    // filters pick among all their recipients (`queue list`, which shows whole messages as
    // mailq does); otherwise it picks recipients.
    bool domain_picks_messages = false;
    // Leave out messages with a recipient in delivery: the attempt's outcome decides for the
    // whole message when it ends (expiry), so that one moment makes one bounce.
    bool skip_in_flight = false;
    // Set by the command line: each message touched is written to the operator log in the same
    // transaction as the change, for the daemon to log who did what (TakeOperatorLog).
    struct Operator {
      std::string user;    // "root", or "root (sudo by alice)"
      std::string action;  // the command: "delete", "hold", "release", "bounce"
    };
    std::optional<Operator> by;
  };
  struct Touched {
    std::vector<std::string> messages;
    int recipients = 0;
    // Finish only: each message's sender and the ID of the notice it caused ("": none), so
    // that the log can link the notice to the message (Postfix: "sender non-delivery
    // notification: ID").
    struct Finished {
      std::string message_id;
      std::string sender;
      std::string notice_id;
    };
    std::vector<Finished> finished;
  };
  // Composes the notice (bounce) for recipients that have just become final; nullopt: none.
  using NoticeFn = std::function<std::optional<NewMessage>(
      const MessageInfo& message, const std::string& content,
      const std::vector<StoredRecipient>& finished)>;

  // The selected recipients with their messages (without content), in queue ID order: each
  // message with only its selected recipients, in their order. One read transaction, so the
  // list is a consistent snapshot while the daemon writes.
  tl::expected<std::vector<MessageInfo>, StoreError> ListMessages(const Selection& s);

  // Queued and deferred recipients become due now.
  tl::expected<Touched, StoreError> Flush(const Selection& s, TimePoint now);
  // Queued and deferred recipients are held: never attempted until released (or expired).
  tl::expected<Touched, StoreError> Hold(const Selection& s);
  // Held recipients become due now.
  tl::expected<Touched, StoreError> Release(const Selection& s, TimePoint now);
  // Whole messages with a selected recipient are removed, without notice.
  tl::expected<Touched, StoreError> Delete(const Selection& s);
  // Pending recipients (queued, deferred, held; attempting too unless s.skip_in_flight: the
  // attempt's outcome is then dropped when it comes) become `final_state` now with `status`/`reply`
  // (empty: keep the last ones) and `cause` (kNone: keep the last one); `notice` makes the
  // bounce, queued in the same transaction.
  tl::expected<Touched, StoreError> Finish(const Selection& s, RecipientState final_state,
                                           const std::string& status, const std::string& reply,
                                           Cause cause, TimePoint now, const NoticeFn& notice);

  // The operator log (schema 10): what the command line did, oldest first, taken out of the
  // table (one transaction) for the daemon to log. A read that finds nothing writes nothing, so
  // the daemon may call it every tick.
  struct OperatorEntry {
    std::int64_t id = 0;
    TimePoint time;
    std::string message_id;
    std::string action;  // as in Selection::Operator
    std::string user;
    std::string notice_id;  // "bounce": the notice queued ("": none, a null sender)
  };
  tl::expected<std::vector<OperatorEntry>, StoreError> TakeOperatorLog(size_t limit = 1000);

  // Suspensions (store_suspend.cpp, schema 16): the operator's `queue suspend`. Due mail of a
  // suspended domain, or of a suspended site (schema 18: the recipient's site, as its last
  // attempt or park found it), is not claimed: ClaimDue parks it (next attempt = the
  // suspension's end, the later one when both are suspended; no attempt counted, state
  // unchanged), so it wakes when the suspension ends without polling.
  struct Suspension {
    std::string kind = "domain";  // "domain" or "site" (AttemptRecord::site)
    std::string name;             // lower case
    TimePoint until;
    std::string reason;
    std::string user;
    TimePoint created;
    // Who decided it (schema 17): "operator" (`queue suspend`), "on_reply" (the daemon, on a
    // [[shaping.on_reply]] rule). `queue resume` ends either.
    std::string origin = "operator";
  };
  // Adds or replaces the suspension of (kind, name). One the daemon decides (origin other than
  // "operator") only ever lengthens the one in force, never shortens it.
  tl::expected<void, StoreError> Suspend(const Suspension& s);
  // Recipients of `message_id` in delivery that waited for a suspension instead of being
  // attempted (the daemon learnt of it after the claim): back to queued (never attempted) or
  // deferred, with no attempt counted, due when the suspension in the table ends, or `now`
  // when there is none in force (resumed meanwhile, or its write has not landed yet: then the
  // claim looks again). With `not_before` (a turn under a [shaping] rate, or when the agent
  // looks at a suspension again), not due before it either, and due exactly at it when no
  // suspension is in force, even if it has passed by the time this is written. A non-empty
  // `site` (the site the delivery found) becomes the recipients' site; the suspension of their site
  // (that one, else the one they had) counts as their domain's does: due at the latest end in
  // force. Others are left alone. Returns the earliest time set, if any.
  tl::expected<std::optional<TimePoint>, StoreError> Park(
      std::string_view message_id, const std::vector<int>& indices, TimePoint now,
      std::optional<TimePoint> not_before = std::nullopt, std::string_view site = {});
  // Recipients of `message_id` parked until `until` (Park) become due `now`: those still
  // queued or deferred with exactly that next attempt (nothing else changed them meanwhile).
  // Returns how many.
  tl::expected<int, StoreError> WakeParked(std::string_view message_id,
                                           const std::vector<int>& indices, TimePoint until,
                                           TimePoint now);
  // Ends it: the mail parked by it (kind "domain" or "site") becomes due `now`. False: there
  // was none (of `origin`, when one is given).
  tl::expected<bool, StoreError> Resume(std::string_view kind, std::string_view name, TimePoint now,
                                        std::string_view origin = {});
  // The suspensions in force at `now` (until > now), ordered by kind and name. (Ended ones
  // are deleted as the next one is written: the table holds what is in force, and is read
  // every tick.)
  tl::expected<std::vector<Suspension>, StoreError> ListSuspensions(TimePoint now);

  // Sending quotas' counters (store_suspend.cpp, schema 16): one row per quota key, the count
  // in its current window.
  struct QuotaUsage {
    std::string key;
    TimePoint window_start;
    std::int64_t count = 0;
  };
  tl::expected<std::vector<QuotaUsage>, StoreError> LoadQuotaUsage();
  // Writes the rows (joins a group commit when called from a write job), and drops rows whose
  // window started before `drop_before`.
  tl::expected<void, StoreError> PutQuotaUsage(const std::vector<QuotaUsage>& rows,
                                               TimePoint drop_before);

  struct Stats {
    std::map<std::string, int> recipients_by_state;  // pending: queued, deferred, attempting, held
    int messages = 0;                                // not completed
    std::optional<TimePoint> oldest_arrival;
    std::vector<std::pair<std::string, int>> top_domains;  // pending recipients per domain
  };
  tl::expected<Stats, StoreError> GetStats(size_t top);
  // The queued and deferred recipients by site (schema 18), the `top` sites with the most of
  // them first (ties by name); one covering scan of index recipients_site.
  struct SiteCounts {
    std::vector<std::pair<std::string, int>> top;
    int more_sites = 0;       // sites beyond the top
    int more_recipients = 0;  // their recipients
    int unknown = 0;          // recipients whose site is not yet known (no attempt or park yet)
  };
  tl::expected<SiteCounts, StoreError> GetSites(size_t top);
  // Whether any recipient in the queue has `site` (lower case) as its site, or any attempt went
  // there.
  tl::expected<bool, StoreError> KnowsSite(std::string_view site);
  // Postfix's qshape: for each of `domains`, its pending recipients by the age of their
  // message, in buckets of under 5, 10, 20, 40, 80, 160, 320, 640, 1280 minutes and older.
  static constexpr int kShapeBuckets = 10;
  tl::expected<std::vector<std::array<int, kShapeBuckets>>, StoreError> GetShape(
      const std::vector<std::string>& domains, TimePoint now);

  // The file's pages (store_space.cpp). Free pages are those of purged mail, kept for reuse.
  struct Space {
    std::int64_t page_size = 0;
    std::int64_t pages = 0;
    std::int64_t free_pages = 0;
    bool incremental = false;  // incremental auto-vacuum: free pages can be given back
  };
  tl::expected<Space, StoreError> GetSpace();
  static constexpr std::int64_t kMinFreePages = 2048;
  // Gives up to `max_pages` free pages back to the file system when the surplus is large (over
  // a quarter of the file and kMinFreePages), down to a tenth; says how much. Nothing when the
  // file is not in incremental auto-vacuum mode.
  struct Returned {
    std::int64_t pages = 0;
    std::int64_t bytes = 0;
  };
  tl::expected<Returned, StoreError> ReturnFreeSpace(std::int64_t max_pages);
  // VACUUM into incremental auto-vacuum mode: the file shrinks to what is in use. Rewrites the
  // whole file and blocks every writer meanwhile: for `danerelay queue compact`, offline.
  tl::expected<void, StoreError> Compact();

  // A consistent copy of the queue in a new file `target` (0600), taken while the daemon runs
  // (SQLite's online backup API; store_backup.cpp): self-contained, checked and fsynced before
  // it gets its name. Never overwrites a file. Says what the copy holds.
  struct BackupInfo {
    std::int64_t schema_version = 0;
    std::int64_t messages = 0;
    std::int64_t pending_messages = 0;  // not yet completed: what a restore would deliver
    std::int64_t bytes = 0;
  };
  tl::expected<BackupInfo, StoreError> Backup(const std::filesystem::path& target);

  // A full disk must not keep the operator from emptying the queue: a deletion needs room in
  // the write-ahead log too. The daemon keeps kReserveBytes allocated in a file beside the
  // database (queue.reserve); `queue delete` and `queue bounce` give it back when they meet a
  // full disk and try once more. KeepReserve makes the file when it is missing or short and
  // says whether it made it now (no room for it is no error: it is made at a later call);
  // GiveBackReserve removes it (false: there was none).
  static constexpr std::int64_t kReserveBytes = 4 << 20;
  static std::filesystem::path ReservePath(const StoreOptions& options);
  bool KeepReserve();
  bool GiveBackReserve();

  struct Impl;                    // opaque outside queue/ (store_impl.hpp)
  friend struct StoreTestAccess;  // unit tests reach the SQLite handle to inject faults

 private:
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace danerelay::queue
