#include "tools/cli/queue_list.hpp"

#include "tools/cli/queue_view.hpp"

namespace danerelay::tools {

int RunQueueList(const config::Config& config, const ListRequest& req, std::ostream& out,
                 std::ostream& err) {
  auto store = queue::Store::Open(config.queue, queue::OpenMode::kReadOnly);
  if (!store) {
    err << "danerelay: " << store.error().message << "\n";
    return 2;
  }
  queue::Store::Selection selection = req.selection;
  // "--sender ''" names the null sender here, as "<>" does.
  if (req.sender_given && selection.sender.empty()) selection.sender = "<>";
  selection.recipient = req.recipient;
  // Like mailq, whole messages: --domain picks those with a recipient there.
  selection.domain_picks_messages = true;
  // A final state is found only among completed messages too.
  const auto& state = selection.state;
  const bool final_state = state && (*state == queue::RecipientState::kDelivered ||
                                     *state == queue::RecipientState::kFailed ||
                                     *state == queue::RecipientState::kExpired);
  selection.include_completed = req.all || final_state;
  auto messages = (*store)->ListMessages(selection);
  if (!messages) {
    err << "danerelay: " << messages.error().message << "\n";
    return 2;
  }
  req.json ? PrintQueueJson(out, *messages) : PrintQueueTable(out, *messages);
  return 0;
}

}  // namespace danerelay::tools
