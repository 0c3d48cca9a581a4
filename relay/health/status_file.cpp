#include "relay/health/status_file.hpp"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <fstream>

namespace danerelay::relay {

void WriteStatusFile(const std::filesystem::path& file, const nlohmann::json& status,
                     std::string_view what) {
  const auto tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << status.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    if (!out) {
      spdlog::warn("{}: cannot write {}", what, tmp);
      return;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, file, ec);
  if (ec) spdlog::warn("{}: cannot write {}: {}", what, file.string(), ec.message());
}

}  // namespace danerelay::relay
