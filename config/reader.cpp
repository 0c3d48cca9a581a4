#include "config/reader.hpp"

namespace danerelay::config {

std::string_view TypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    default:
      return "a date or time";
  }
}

bool ValidHostname(std::string_view h) {
  if (h.empty() || h.size() > 253 || h.front() == '.' || h.back() == '.') return false;
  for (char c : h) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

std::optional<Reader> Reader::Table(std::string_view key) {
  source_.errors.NextTable();
  const toml::node* n = table_.get(key);
  if (!n) return std::nullopt;
  const std::string path = prefix_ + std::string(key);
  if (!n->is_table()) {
    source_.errors =
        ConfigError{fmt::format("{}:{}: {}: expected a table [{}], got {}", source_.file,
                                n->source().begin.line, path, path, TypeName(*n))};
    return std::nullopt;
  }
  return Reader(*n->as_table(), path + ".", source_);
}

void Reader::Fail(const toml::node& at, std::string_view key, std::string_view message) {
  source_.errors = ConfigError{
      fmt::format("{}:{}: {}{}: {}", source_.file, at.source().begin.line, prefix_, key, message)};
}

void Reader::FailHere(std::string_view key, std::string_view message) {
  const toml::node* n = table_.get(key);
  Fail(n ? *n : static_cast<const toml::node&>(table_), key, message);
}

void Reader::OnlyKeys(std::initializer_list<std::string_view> known) {
  for (auto&& [k, v] : table_) {
    bool ok = false;
    for (auto name : known) ok = ok || k.str() == name;
    if (!ok) {
      source_.errors = ConfigError{fmt::format("{}:{}: {}{}: unknown key", source_.file,
                                               k.source().begin.line, prefix_, k.str())};
    }
  }
}

void Reader::String(std::string_view key, std::string& out) {
  const toml::node* n = table_.get(key);
  if (!n) return;
  if (!n->is_string()) return Fail(*n, key, fmt::format("expected a string, got {}", TypeName(*n)));
  out = n->as_string()->get();
}

void Reader::Bool(std::string_view key, bool& out) {
  const toml::node* n = table_.get(key);
  if (!n) return;
  if (!n->is_boolean()) {
    return Fail(*n, key, fmt::format("expected true or false, got {}", TypeName(*n)));
  }
  out = n->as_boolean()->get();
}

void Reader::Duration(std::string_view key, std::chrono::seconds& out, std::chrono::seconds min,
                      std::chrono::seconds max) {
  const toml::node* n = table_.get(key);
  if (!n) return;
  std::optional<std::chrono::seconds> d;
  if (n->is_integer() && n->as_integer()->get() >= 0) {
    d = std::chrono::seconds(n->as_integer()->get());
  } else if (n->is_string()) {
    d = ParseDuration(n->as_string()->get());
  } else if (!n->is_integer()) {
    return Fail(*n, key, fmt::format("expected a duration such as \"5m\", got {}", TypeName(*n)));
  }
  if (!d) {
    return Fail(*n, key, "expected a duration: a number with s, m, h or d (\"300s\", \"5m\")");
  }
  if (*d < min) return Fail(*n, key, fmt::format("must be at least {}s", min.count()));
  if (*d > max) {
    return Fail(*n, key,
                fmt::format("must be at most {}d ({}s)", max.count() / 86400, max.count()));
  }
  out = *d;
}

void Reader::Path(std::string_view key, std::filesystem::path& out) {
  std::string s;
  const std::size_t before = source_.errors.Count();
  String(key, s);
  if (source_.errors.Count() != before || !table_.get(key)) return;
  if (s.empty()) return FailHere(key, "must not be empty");
  out = std::filesystem::path(s).is_relative() ? source_.base_dir / s : std::filesystem::path(s);
}

}  // namespace danerelay::config
