#pragma once
// The filters the queue commands share (queue IDs, --domain, --sender, --state, --older-than),
// read from the command line's words into the store's selection.
#include <ostream>
#include <string>
#include <vector>

#include "queue/store.hpp"

namespace danerelay::tools {

struct QueueFilters {
  std::vector<std::string> ids;
  std::string domain, sender, state, older_than;
};

// 0, or the exit status (64) after saying on `err` what is wrong.
int ReadFilters(const QueueFilters& filters, queue::Store::Selection& out, std::ostream& err);

}  // namespace danerelay::tools
