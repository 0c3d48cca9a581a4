#include "relay/delivery/pass_notices.hpp"

#include <algorithm>

#include "dns/idn.hpp"
#include "queue/notice.hpp"
#include "relay/dkim/slot.hpp"

namespace danerelay::relay {

queue::NoticeOptions MakeNoticeOptions(std::string hostname, const dkim::SignerSlot* dkim) {
  queue::NoticeOptions o(std::move(hostname));
  o.header_address = [](const std::string& a) { return dns::ToAsciiAddressIfPossible(a); };
  if (dkim) {
    o.sign = [dkim](std::string& content, const std::string& id) { dkim->SignOwn(content, id); };
  }
  return o;
}

std::vector<PassNotice> PassNotices(const queue::MessageInfo& m, const std::string& content,
                                    const queue::PassOutcome& pass, queue::TimePoint now,
                                    const NoticeSettings& settings, queue::QueueIdGenerator& ids) {
  std::vector<PassNotice> out;
  const queue::NoticeOptions notice_options = MakeNoticeOptions(settings.hostname, settings.dkim);
  if (!pass.bounce.empty()) {
    out.push_back({queue::ComposeNotice(queue::NoticeKind::kFailure, m, content, pass.bounce,
                                        ids.Next(now), now, std::nullopt, notice_options),
                   "sender non-delivery notification", "bounce"});
  }
  // A notice that cannot be delivered gets no notice of its own (no loops); the postmaster may
  // get a copy, unless the undeliverable mail was itself such a copy.
  const bool to_postmaster =
      m.sender.empty() && !settings.postmaster.empty() && !pass.failed.empty() &&
      std::none_of(m.recipients.begin(), m.recipients.end(),
                   [&](const auto& r) { return r.address == settings.postmaster; });
  if (to_postmaster) {
    queue::NoticeOptions pm = notice_options;
    pm.postmaster = settings.postmaster;
    out.push_back({queue::ComposeNotice(queue::NoticeKind::kFailure, m, content, pass.failed,
                                        ids.Next(now), now, std::nullopt, pm),
                   "postmaster notification", "postmaster"});
  }
  if (!pass.relayed.empty()) {
    out.push_back({queue::ComposeNotice(queue::NoticeKind::kRelayed, m, content, pass.relayed,
                                        ids.Next(now), now, std::nullopt, notice_options),
                   "sender delivery status notification", "relayed"});
  }
  if (!pass.warn.empty()) {
    out.push_back(
        {queue::ComposeNotice(queue::NoticeKind::kDelay, m, content, pass.warn, ids.Next(now), now,
                              m.arrival + settings.max_lifetime, notice_options),
         "sender delay notification", "delay"});
  }
  return out;
}

}  // namespace danerelay::relay
