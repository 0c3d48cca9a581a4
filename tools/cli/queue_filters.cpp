#include "tools/cli/queue_filters.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "config/config.hpp"

namespace danerelay::tools {

int ReadFilters(const QueueFilters& filters, queue::Store::Selection& out, std::ostream& err) {
  constexpr int kExitUsage = 64;  // EX_USAGE
  out.ids = filters.ids;
  out.domain = filters.domain;
  out.sender = filters.sender;
  const std::string& state = filters.state;
  if (!state.empty() && !(out.state = queue::RecipientStateFromString(state))) {
    std::vector<std::string_view> names;
    for (auto s = queue::RecipientState::kQueued; s <= queue::RecipientState::kHeld;
         s = static_cast<queue::RecipientState>(static_cast<int>(s) + 1)) {
      names.push_back(queue::ToString(s));
    }
    err << fmt::format("danerelay: --state {}: not a recipient state; the states are: {}\n", state,
                       fmt::join(names, ", "));
    return kExitUsage;
  }
  if (!filters.older_than.empty()) {
    const auto age = config::ParseDuration(filters.older_than);
    if (!age) {
      err << "danerelay: --older-than " << filters.older_than
          << ": expected a duration such as 30m, 2h or 3d\n";
      return kExitUsage;
    }
    out.arrived_before = queue::Clock::now() - *age;
  }
  return 0;
}

}  // namespace danerelay::tools
