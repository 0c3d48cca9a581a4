#pragma once
// The notices one delivery pass causes, composed where its outcome is recorded (in the same
// transaction): one bounce per message and pass listing every recipient that failed or expired,
// the postmaster's copy of undeliverable mail from <>, success reports for hops without DSN,
// delay warnings.
#include <chrono>
#include <string>
#include <vector>

#include "queue/message.hpp"
#include "queue/notice.hpp"
#include "queue/queue_id.hpp"
#include "queue/retry.hpp"

namespace danerelay::relay {

namespace dkim {
class SignerSlot;
}

struct NoticeSettings {
  std::string hostname;    // Reporting-MTA
  std::string postmaster;  // "": no copies
  std::chrono::seconds max_lifetime{5 * 24 * 3600};
  const dkim::SignerSlot* dkim = nullptr;  // signs the notices; null: unsigned
};

struct PassNotice {
  queue::NewMessage message;
  const char* what;  // for the log: "sender non-delivery notification", ...
  const char*
      kind;  // for danerelay_notices_total{kind}: "bounce", "postmaster", "relayed", "delay"
};

std::vector<PassNotice> PassNotices(const queue::MessageInfo& m, const std::string& content,
                                    const queue::PassOutcome& pass, queue::TimePoint now,
                                    const NoticeSettings& settings, queue::QueueIdGenerator& ids);

// The notices' options for this host: IDN domains in the To: header as A-labels, signed by
// `dkim` when given.
queue::NoticeOptions MakeNoticeOptions(std::string hostname, const dkim::SignerSlot* dkim);

}  // namespace danerelay::relay
