#include "queue/retry.hpp"

#include <algorithm>

namespace danerelay::queue {

TimePoint NextAttempt(int attempts, TimePoint now, TimePoint arrival, const RetryOptions& options,
                      std::mt19937& rng) {
  using std::chrono::duration_cast;
  using Sec = std::chrono::duration<double>;
  double delay = Sec(options.min_backoff).count();
  const double max = Sec(options.max_backoff).count();
  for (int i = 1; i < attempts && delay < max; ++i) delay *= 2;
  delay = std::min(delay, max);
  std::uniform_real_distribution<double> jitter(0.9, 1.1);
  delay = std::clamp(delay * jitter(rng), Sec(options.min_backoff).count(), max);
  const TimePoint next = now + duration_cast<Clock::duration>(Sec(delay));
  return std::min(next, arrival + options.max_lifetime);
}

bool Expired(TimePoint arrival, TimePoint now, const RetryOptions& options) {
  return now - arrival >= options.max_lifetime;
}

PassOutcome SchedulePass(const MessageInfo& m, std::vector<RecipientUpdate> updates, TimePoint now,
                         const RetryOptions& options, std::mt19937& rng,
                         const std::vector<StoredRecipient>& rest) {
  PassOutcome out;
  MessageInfo all = m;  // `m` plus the rest, so that their state before the pass is known
  if (Expired(m.arrival, now, options)) {
    for (const auto& r : rest) {
      // As the expiry pass does: the last transient status is kept, 4.4.7 when there was none.
      RecipientUpdate u{r.index,
                        RecipientState::kExpired,
                        std::nullopt,
                        r.last_status.empty() ? "4.4.7" : r.last_status,
                        r.last_reply.empty() ? "message expired in the queue" : r.last_reply,
                        r.last_remote};
      u.attempted = false;
      u.reply_is_remote = !r.last_reply.empty() && r.last_reply_remote;
      u.cause = r.last_cause;
      updates.push_back(std::move(u));
      all.recipients.push_back(r);
    }
  }
  for (auto& u : updates) {
    const StoredRecipient* before = nullptr;
    for (const auto& r : all.recipients) {
      if (r.index == u.index) before = &r;
    }
    StoredRecipient after = before ? *before : StoredRecipient{};
    after.index = u.index;
    after.last_status = u.status;
    after.last_reply = u.reply;
    after.last_remote = u.remote;
    after.last_reply_remote = u.reply_is_remote;
    after.last_cause = u.cause;
    if (u.attempted) after.last_attempt = now;
    if (u.state == RecipientState::kDeferred) {
      if (Expired(m.arrival, now, options)) {
        u.state = RecipientState::kExpired;
        u.next_attempt.reset();
      } else {
        u.next_attempt =
            NextAttempt((before ? before->attempts : 0) + 1, now, m.arrival, options, rng);
        const bool late =
            options.delay_warning.count() > 0 && now - m.arrival >= options.delay_warning;
        if (late && !after.delay_warned && WantsNotice(NoticeKind::kDelay, m, after)) {
          u.delay_warned = true;
          out.warn.push_back(after);
        }
      }
    }
    after.state = u.state;
    if (u.state == RecipientState::kDelivered && !u.remote_dsn &&
        WantsNotice(NoticeKind::kRelayed, m, after)) {
      out.relayed.push_back(after);
    }
    if (u.state == RecipientState::kFailed || u.state == RecipientState::kExpired) {
      out.failed.push_back(after);
      if (WantsNotice(NoticeKind::kFailure, m, after)) out.bounce.push_back(after);
    }
    out.updates.push_back(std::move(u));
  }
  return out;
}

}  // namespace danerelay::queue
