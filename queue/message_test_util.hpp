#pragma once
// What the queue's unit tests of retries and notices start from: a message as the store returns
// it, with one recipient in delivery.
#include <chrono>
#include <string>

#include "queue/message.hpp"

namespace danerelay::queue {

inline const TimePoint kT0 = TimePoint(std::chrono::seconds(1'795'337'301));

// Message "M1" from `sender`, arrived at kT0, to bob@example.net (being attempted, with
// `notify` and its ORCPT).
inline MessageInfo OneRecipient(std::string sender, unsigned notify) {
  MessageInfo m;
  m.id = "M1";
  m.sender = std::move(sender);
  m.arrival = kT0;
  StoredRecipient r;
  r.index = 0;
  r.address = "bob@example.net";
  r.state = RecipientState::kAttempting;
  r.notify = notify;
  r.orcpt = "rfc822;bob@example.net";
  m.recipients.push_back(r);
  return m;
}

}  // namespace danerelay::queue
