#pragma once
// Internal to config/: reads one TOML table of the schema into plain structs, keeping every
// problem with its file, line and key ("danerelay.toml:12: limits.max_recipients: expected an
// integer, got a string"). The readers of the tables themselves are in load_tables.hpp.
#include <toml++/toml.h>

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace danerelay::config {

// "a string", "an integer", ...: what a value is, for messages.
std::string_view TypeName(const toml::node& node);

// A hostname for the greeting and EHLO: letters, digits, hyphens and dots (RFC 5321 §2.3.5).
bool ValidHostname(std::string_view h);

// The problems found so far, for `config check` to list them all. True while the table being
// read has a problem: the checks guarded by it build on values read before (a port range on a
// port that was a string). Reader::Table starts the next table afresh.
class Errors {
 public:
  explicit operator bool() const { return in_table_; }
  Errors& operator=(ConfigError e) {
    in_table_ = true;
    all_.push_back(std::move(e.message));
    return *this;
  }
  void NextTable() { in_table_ = false; }
  std::size_t Count() const { return all_.size(); }
  ConfigError Result() const { return ConfigError{all_.front(), all_}; }

 private:
  bool in_table_ = false;
  std::vector<std::string> all_;
};

// What the readers of every table share: the file's name for messages, the directory relative
// paths start from, and the problems found so far.
struct Source {
  std::string file;
  std::filesystem::path base_dir;
  Errors errors;
};

// Reads one table of the schema. Each key's first problem is kept; the checks across keys
// (`Ok()`) run only while the table has none. A key that is absent leaves `out` as it was: the
// default.
class Reader {
 public:
  // `prefix` names the table in messages: "" for the file's top level, "auth.senders." ...
  Reader(const toml::table& table, std::string prefix, Source& source)
      : table_(table), prefix_(std::move(prefix)), source_(source) {}

  // The table `key` within this one ("server", or "senders" within [auth]), when present; the
  // problems of this table no longer hold back the checks of the next.
  std::optional<Reader> Table(std::string_view key);

  // False once this table has a problem.
  bool Ok() const { return !source_.errors; }

  void Fail(const toml::node& at, std::string_view key, std::string_view message);
  void FailHere(std::string_view key, std::string_view message);

  // Every key in the table must be one of `known`.
  void OnlyKeys(std::initializer_list<std::string_view> known);

  const toml::table& Entries() const { return table_; }
  const toml::node* Get(std::string_view key) const { return table_.get(key); }

  void String(std::string_view key, std::string& out);
  void Bool(std::string_view key, bool& out);

  template <typename T>
  void Unsigned(std::string_view key, T& out, std::uint64_t min, std::uint64_t max) {
    const toml::node* n = table_.get(key);
    if (!n) return;
    if (!n->is_integer()) {
      return Fail(*n, key, fmt::format("expected an integer, got {}", TypeName(*n)));
    }
    const std::int64_t v = n->as_integer()->get();
    if (v < 0 || static_cast<std::uint64_t>(v) < min || static_cast<std::uint64_t>(v) > max) {
      return Fail(*n, key, fmt::format("{} is out of range ({}..{})", v, min, max));
    }
    out = static_cast<T>(v);
  }

  // Durations have an upper bound too: time arithmetic on the nanosecond clock overflows
  // beyond ~292 years, and "200000d" used to pass and expire the whole queue at once.
  void Duration(std::string_view key, std::chrono::seconds& out, std::chrono::seconds min,
                std::chrono::seconds max = std::chrono::hours(24 * 365));

  // An array of strings, each checked by `check` (which returns "" or why it is wrong).
  template <typename Check>
  void Strings(std::string_view key, std::vector<std::string>& out, Check check) {
    const toml::node* n = table_.get(key);
    if (!n) return;
    const toml::array* arr = n->as_array();
    if (!arr)
      return Fail(*n, key, fmt::format("expected an array of strings, got {}", TypeName(*n)));
    std::vector<std::string> values;
    for (const toml::node& item : *arr) {
      if (!item.is_string()) {
        return Fail(item, key, fmt::format("expected a string, got {}", TypeName(item)));
      }
      std::string v = item.as_string()->get();
      if (std::string why = check(v); !why.empty()) return Fail(item, key, why);
      values.push_back(std::move(v));
    }
    out = std::move(values);
  }

  // A relative path is taken relative to the file's directory.
  void Path(std::string_view key, std::filesystem::path& out);

 private:
  const toml::table& table_;
  std::string prefix_;
  Source& source_;
};

}  // namespace danerelay::config
