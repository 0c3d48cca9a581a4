#pragma once
// When to try a deferred recipient again, and when to give up. Pure functions of injected time
// (relay/DESIGN.md: "the scheduler only decides when"), so five days are tested in microseconds.
#include <chrono>
#include <random>
#include <vector>

#include "queue/message.hpp"
#include "queue/notice.hpp"

namespace danerelay::queue {

struct RetryOptions {
  std::chrono::seconds min_backoff{300};   // Postfix: minimal_backoff_time
  std::chrono::seconds max_backoff{4000};  // Postfix: maximal_backoff_time
  std::chrono::seconds max_lifetime{5 * 24 * 3600};
  std::chrono::seconds delay_warning{4 * 3600};  // 0: no delay warnings
};

// The next attempt after `attempts` failed ones (1 = the first failure): min_backoff doubled per
// attempt up to max_backoff, with ±10 % jitter so that a queue of mail for one dead host does not
// come back in lockstep, and never after the message's expiry (one last try at that moment).
TimePoint NextAttempt(int attempts, TimePoint now, TimePoint arrival, const RetryOptions& options,
                      std::mt19937& rng);

// Past max_lifetime: the recipient is returned to the sender, whatever its state.
bool Expired(TimePoint arrival, TimePoint now, const RetryOptions& options);

// What one delivery pass means for a message's recipients: when the deferred ones come back,
// which have expired (their last transient status is kept, as Postfix does), and who is told.
struct PassOutcome {
  std::vector<RecipientUpdate> updates;  // next_attempt set for deferred, expired marked
  std::vector<StoredRecipient> bounce;   // failed or expired, and the sender wants to know
  std::vector<StoredRecipient> failed;   // every failed or expired recipient
  std::vector<StoredRecipient> warn;     // deferred past delay_warning, not yet warned
  std::vector<StoredRecipient> relayed;  // delivered with NOTIFY=SUCCESS to a hop without DSN
};

// `updates` come from the delivery agent, deferred ones without a next attempt. `m` holds the
// recipients as they were before the pass (attempt counts, delay_warned). `rest` are the
// message's other pending recipients (queued, deferred, held: not in this pass): when the
// message has expired they expire with it, so that one bounce lists every recipient that
// failed at this moment (relay/DESIGN.md), whichever path failed it.
PassOutcome SchedulePass(const MessageInfo& m, std::vector<RecipientUpdate> updates, TimePoint now,
                         const RetryOptions& options, std::mt19937& rng,
                         const std::vector<StoredRecipient>& rest = {});

}  // namespace danerelay::queue
