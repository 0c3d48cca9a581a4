#pragma once
// Counters for the Prometheus endpoint ([metrics] address/port, off by default), in the text
// exposition format 0.0.4. Counted on the io thread only (the daemon has one), so no locks.
// Every family and its known label values are listed below, so a scrape shows zeros before
// the first event instead of missing series.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace danerelay::relay {

class Metrics {
 public:
  // The daemon's registry.
  static Metrics& Get();

  // Adds `n` to the counter `family` with `labels` ("outcome=\"sent\"", or "" for none).
  void Add(std::string_view family, std::string_view labels = {}, std::uint64_t n = 1);
  std::uint64_t Value(std::string_view family, std::string_view labels = {}) const;

  // The gauge `family` (listed in metrics.cpp) with `labels` is `value` (a gauge that is gone:
  // EraseGauge).
  void SetGauge(std::string_view family, std::string_view labels, double value);
  void EraseGauge(std::string_view family, std::string_view labels);

  // HELP, TYPE and every series of every family, in a stable order.
  std::string Render() const;

  // The SMTP server's refusals, by the command refused (ServerSession::Reject::command);
  // "other" for one not in the family's list.
  void CountReject(std::string_view command);

 private:
  Metrics();
  std::map<std::string, std::map<std::string, std::uint64_t, std::less<>>, std::less<>> counters_;
  std::map<std::string, std::map<std::string, double, std::less<>>, std::less<>> gauges_;
};

// A label value for the text format: backslash, quote and newline escaped.
std::string LabelValue(std::string_view v);

}  // namespace danerelay::relay
