#pragma once
// [archive]: the archive copy of a submission, added to its envelope at acceptance (before the
// commit that precedes the 250), with NOTIFY=NEVER so that no notice ever goes to the sender
// about it, and never named in the header. Its delivery is tracked like any recipient's.
#include "queue/message.hpp"
#include "relay/options.hpp"

namespace danerelay::relay {

// Adds [archive] recipient and the address for the envelope sender's domain, each once and
// only if the message does not already go there.
void AddArchiveRecipients(queue::NewMessage& message, const ArchiveOptions& archive);

}  // namespace danerelay::relay
