#pragma once
// Helpers shared by the fuzz targets: take bytes and fields from libFuzzer's input, and the
// invariants several targets check. A broken invariant aborts, which libFuzzer reports as a
// finding (so does every ASan/UBSan error).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace danerelay::fuzz {

// Reads the input front to back: single bytes for decisions, NUL-separated fields for strings.
class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size)
      : rest_(reinterpret_cast<const char*>(data), size) {}
  std::uint8_t Byte() {
    if (rest_.empty()) return 0;
    const auto b = static_cast<std::uint8_t>(rest_.front());
    rest_.remove_prefix(1);
    return b;
  }
  std::string Field() {
    const auto end = rest_.find('\0');
    std::string out(rest_.substr(0, end));
    rest_ = end == std::string_view::npos ? std::string_view() : rest_.substr(end + 1);
    return out;
  }
  std::string_view Rest() const { return rest_; }
  bool empty() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

[[noreturn]] inline void Violated(const char* what, std::string_view context) {
  std::fprintf(stderr, "invariant violated: %s\n--- context (%zu bytes) ---\n%.*s\n", what,
               context.size(), static_cast<int>(context.size() > 2000 ? 2000 : context.size()),
               context.data());
  std::abort();
}

// Every CR is followed by LF and every LF preceded by CR: nothing a peer could split
// differently (SMTP smuggling, header injection).
inline bool OnlyCrlf(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' && (i + 1 == s.size() || s[i + 1] != '\n')) return false;
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) return false;
  }
  return true;
}

}  // namespace danerelay::fuzz
