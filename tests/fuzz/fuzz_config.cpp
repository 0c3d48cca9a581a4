// Fuzz target: the TOML configuration loader (config/ on toml++). Invariant: a file
// is either loaded or refused with a message that names the file, a line and a key.
#include <cstdint>
#include <string_view>

#include "config/config.hpp"
#include "tests/fuzz/fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view toml(reinterpret_cast<const char*>(data), size);
  auto cfg = danerelay::config::LoadString(toml, "fuzz.toml", "/nonexistent-danerelay-fuzz");
  if (!cfg && !cfg.error().message.starts_with("fuzz.toml")) {
    danerelay::fuzz::Violated("config error without the file name", cfg.error().message);
  }
  return 0;
}
