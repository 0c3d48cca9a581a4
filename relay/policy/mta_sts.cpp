#include "relay/policy/mta_sts.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace danerelay::relay::sts {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

bool IsAlnum(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; });
}

// One "v=STSv1; id=...;" record: the id, or none.
std::optional<std::string> IdOf(std::string_view record) {
  std::optional<std::string> id;
  bool first = true;
  while (!record.empty()) {
    const auto semi = record.find(';');
    const std::string_view field = Trim(record.substr(0, semi));
    record = semi == std::string_view::npos ? std::string_view() : record.substr(semi + 1);
    if (field.empty()) {
      if (first) return std::nullopt;
      continue;
    }
    const auto eq = field.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    const std::string_view key = field.substr(0, eq), value = field.substr(eq + 1);
    if (first) {
      if (key != "v" || value != "STSv1") return std::nullopt;
      first = false;
    } else if (key == "id") {
      if (value.empty() || value.size() > 32 || !IsAlnum(value) || id) return std::nullopt;
      id = std::string(value);
    }
  }
  return id;
}

}  // namespace

std::string_view ToString(Mode mode) {
  switch (mode) {
    case Mode::kNone:
      return "none";
    case Mode::kTesting:
      return "testing";
    case Mode::kEnforce:
      return "enforce";
  }
  return "none";
}

std::optional<std::string> ParseTxt(const std::vector<std::string>& records) {
  std::vector<std::string_view> sts;
  for (const auto& r : records) {
    if (r.starts_with("v=STSv1")) sts.push_back(r);  // others are discarded (§3.1)
  }
  if (sts.size() != 1) return std::nullopt;
  return IdOf(sts.front());
}

tl::expected<Policy, std::string> ParsePolicy(std::string_view text) {
  Policy p;
  std::optional<std::string> version, mode, max_age;
  int line_no = 0;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (Trim(line).empty()) continue;
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) {
      return tl::unexpected(fmt::format("line {} is not \"key: value\"", line_no));
    }
    const std::string_view key = Trim(line.substr(0, colon));
    const std::string_view value = Trim(line.substr(colon + 1));
    if (key == "version" && !version) {
      version = std::string(value);
    } else if (key == "mode" && !mode) {
      mode = std::string(value);
    } else if (key == "max_age" && !max_age) {
      max_age = std::string(value);
    } else if (key == "mx") {
      if (value.empty()) return tl::unexpected(fmt::format("line {}: empty mx", line_no));
      p.mx.push_back(Lower(value));
    }
  }
  if (version != "STSv1") return tl::unexpected(std::string("version is not STSv1"));
  if (mode == "enforce") {
    p.mode = Mode::kEnforce;
  } else if (mode == "testing") {
    p.mode = Mode::kTesting;
  } else if (mode == "none") {
    p.mode = Mode::kNone;
  } else {
    return tl::unexpected("mode is " + (mode ? "'" + *mode + "'" : std::string("missing")));
  }
  std::uint64_t age = 0;
  if (!max_age || max_age->empty() || max_age->size() > 10 ||
      std::from_chars(max_age->data(), max_age->data() + max_age->size(), age).ptr !=
          max_age->data() + max_age->size() ||
      age > 31557600) {
    return tl::unexpected(std::string("max_age is missing or not 0..31557600"));
  }
  p.max_age = std::chrono::seconds(age);
  if (p.mode != Mode::kNone && p.mx.empty()) {
    return tl::unexpected(std::string("no mx patterns"));
  }
  return p;
}

bool FetchDue(const Policy& policy, std::chrono::system_clock::time_point fetched,
              std::string_view id, std::chrono::system_clock::time_point now) {
  if (policy.id != id) return true;
  const std::chrono::seconds refresh =
      std::min<std::chrono::seconds>(std::chrono::hours(24), policy.max_age / 2);
  return now >= fetched + refresh;
}

bool IsPolicyMediaType(std::string_view content_type) {
  // The parameters go; optional whitespace around the type (RFC 9110 §5.6.3) as well.
  const std::string_view type = Trim(content_type.substr(0, content_type.find(';')));
  std::string lower(type);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower == "text/plain";
}

bool MxMatches(std::string_view pattern, std::string_view host) {
  const std::string p = Lower(pattern), h = Lower(host);
  if (p.starts_with("*.")) {
    const auto dot = h.find('.');
    return dot != std::string::npos && dot > 0 && h.substr(dot) == p.substr(1);
  }
  return p == h;
}

bool MxAllowed(const Policy& policy, std::string_view host) {
  return std::any_of(policy.mx.begin(), policy.mx.end(),
                     [&](const std::string& p) { return MxMatches(p, host); });
}

}  // namespace danerelay::relay::sts
