#pragma once
// The daemon's status files in the queue directory (resolver.status, preflight.status), which
// `danerelay queue stats` reads: JSON, replaced atomically (written aside, then renamed).
#include <nlohmann/json_fwd.hpp>

#include <filesystem>
#include <string_view>

namespace danerelay::relay {

// Logs a warning naming `what` when the file cannot be written.
void WriteStatusFile(const std::filesystem::path& file, const nlohmann::json& status,
                     std::string_view what);

}  // namespace danerelay::relay
