#include "tools/cli/queue_list.hpp"

#include <algorithm>

#include "tools/cli/queue_view.hpp"

namespace danerelay::tools {

int RunQueueList(const config::Config& config, const ListRequest& req, std::ostream& out,
                 std::ostream& err) {
  auto opened = queue::Store::Open(config.queue, queue::OpenMode::kReadOnly);
  if (!opened) {
    err << "danerelay: " << opened.error().message << "\n";
    return 2;
  }
  queue::Store& store = **opened;
  const queue::Store::Selection& filter = req.selection;
  const bool sender_given = req.sender_given;  // "<>" is the null sender
  const std::string sender = filter.sender == "<>" ? "" : filter.sender;
  // A final state is found only among completed messages too.
  const auto& state = filter.state;
  const bool final_state = state && (*state == queue::RecipientState::kDelivered ||
                                     *state == queue::RecipientState::kFailed ||
                                     *state == queue::RecipientState::kExpired);
  auto messages = store.ListMessages(req.all || final_state, filter.domain);
  if (!messages) {
    err << "danerelay: " << messages.error().message << "\n";
    return 2;
  }
  // Messages that match every filter, with only the recipients that do.
  std::erase_if(*messages, [&](queue::MessageInfo& m) {
    if (!filter.ids.empty() &&
        std::find(filter.ids.begin(), filter.ids.end(), m.id) == filter.ids.end()) {
      return true;
    }
    if (sender_given && m.sender != sender) return true;
    if (filter.arrived_before && m.arrival >= *filter.arrived_before) return true;
    std::erase_if(m.recipients, [&](const queue::StoredRecipient& r) {
      return (state && r.state != *state) || (!req.recipient.empty() && r.address != req.recipient);
    });
    return m.recipients.empty();
  });
  req.json ? PrintQueueJson(out, *messages) : PrintQueueTable(out, *messages);
  return 0;
}

}  // namespace danerelay::tools
