#pragma once
// What traffic shaping holds in the daemon's memory, for `danerelay queue stats` (issue 26 item
// 5): per site, the connections in use and waiting for one, and the budgets of its rates. The
// delivery agent writes it to shaping.status in the queue directory (status_file.hpp) when it
// changes, at most every few seconds; the command line reads and prints it.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <string>

#include "queue/message.hpp"
#include "relay/delivery/destination_slots.hpp"
#include "relay/delivery/rate_gate.hpp"

namespace danerelay::relay {

std::filesystem::path ShapingStatusFile(const std::filesystem::path& queue_dir);

// `parked`: mail parked per site until one of its connections ends.
// `message_rates` is keyed as the agent keys it ("site S", "domain D"), `connection_rates` by
// site. Sites and domains with nothing in use, waiting or booked are left out.
nlohmann::json ShapingStatus(const DestinationSlots& slots, const RateGate& message_rates,
                             const RateGate& connection_rates,
                             const std::map<std::string, std::size_t>& parked,
                             queue::TimePoint now);

// The lines `queue stats` prints ("" when there is nothing to say): a site per line, with what
// is in use and the rates' budgets; a file older than a minute is said to be stale.
std::string DescribeShapingStatus(const std::filesystem::path& queue_dir,
                                  nlohmann::json* as_json = nullptr);

}  // namespace danerelay::relay
