#pragma once
// danerelay queue list: the queue as mailq shows it (queue_view.hpp), read-only, narrowed by the
// filters the actions take (queue_filters.hpp) and --recipient.
#include <ostream>
#include <string>

#include "config/config.hpp"
#include "queue/store.hpp"

namespace danerelay::tools {

struct ListRequest {
  queue::Store::Selection selection;  // the shared filters
  bool sender_given = false;          // --sender was given: "" is the null sender too
  std::string recipient;              // --recipient: only this address
  bool all = false;                   // completed messages too
  bool json = false;
};

// Exit status: 0 listed (also when nothing matched), 2 queue error.
int RunQueueList(const config::Config& config, const ListRequest& request, std::ostream& out,
                 std::ostream& err);

}  // namespace danerelay::tools
