#include "relay/dkim/record.hpp"

#include <fmt/format.h>

namespace danerelay::relay::dkim {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string Strip(std::string_view s, bool all_space) {
  std::string out;
  for (char c : s) {
    if (!all_space || !IsSpace(c)) out += c;
  }
  if (all_space) return out;
  const auto b = out.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return out.substr(b, out.find_last_not_of(" \t\r\n") - b + 1);
}

struct Tag {
  std::string name, value;
};

// RFC 6376 §3.2 tag=value; lists; none when a tag has no '=' or a tag occurs twice.
std::optional<std::vector<Tag>> ParseTags(std::string_view text) {
  std::vector<Tag> tags;
  while (!text.empty()) {
    const auto semi = text.find(';');
    const std::string_view part = text.substr(0, semi);
    text = semi == std::string_view::npos ? std::string_view() : text.substr(semi + 1);
    if (Strip(part, false).empty()) continue;  // a trailing ';'
    const auto eq = part.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    Tag t{Strip(part.substr(0, eq), false), Strip(part.substr(eq + 1), false)};
    for (const auto& other : tags) {
      if (other.name == t.name) return std::nullopt;  // §3.2: a duplicate tag is an error
    }
    tags.push_back(std::move(t));
  }
  return tags;
}

// Whether a colon-separated tag value (whitespace removed) holds `item`.
bool ListHas(std::string_view list, std::string_view item) {
  while (true) {
    const auto colon = list.find(':');
    if (list.substr(0, colon) == item) return true;
    if (colon == std::string_view::npos) return false;
    list.remove_prefix(colon + 1);
  }
}

}  // namespace

std::optional<KeyRecord> FindKeyRecord(const std::vector<std::string>& txt, std::string* why) {
  std::optional<KeyRecord> found;
  for (const auto& record : txt) {
    const auto tags = ParseTags(record);
    if (!tags) continue;
    // §3.6.1: v=, when present, must be first and DKIM1.
    bool ok = true, has_p = false;
    KeyRecord k;
    for (std::size_t i = 0; i < tags->size(); ++i) {
      const Tag& t = (*tags)[i];
      if (t.name == "v" && (i != 0 || t.value != "DKIM1")) ok = false;
      if (t.name == "k") k.key_type = t.value;
      if (t.name == "h") k.hashes = Strip(t.value, true);
      if (t.name == "s") k.services = Strip(t.value, true);
      if (t.name == "p") {
        has_p = true;
        k.public_b64 = Strip(t.value, true);
      }
    }
    if (!ok || !has_p) continue;
    if (found) {
      if (why) *why = "more than one key record";
      return std::nullopt;
    }
    found = std::move(k);
  }
  if (!found && why)
    *why = txt.empty() ? "no TXT record" : "no DKIM key record among the TXT records";
  return found;
}

std::string KeyRecordProblem(const Key& key, const std::vector<std::string>& txt) {
  std::string why;
  const auto record = FindKeyRecord(txt, &why);
  if (!record) return why;
  if (record->public_b64.empty()) return "the record revokes the key (empty p=)";
  const bool ed = key.algorithm == Algorithm::kEd25519Sha256;
  if (record->key_type != (ed ? "ed25519" : "rsa")) {
    return fmt::format("the record says k={}, the key is {}", record->key_type,
                       ed ? "ed25519" : "rsa");
  }
  if (!record->hashes.empty() && !ListHas(record->hashes, "sha256")) {
    return "the record's h=" + record->hashes +
           " does not allow sha256, which danerelay signs with";
  }
  if (!ListHas(record->services, "*") && !ListHas(record->services, "email")) {
    return "the record's s=" + record->services + " does not allow email";
  }
  if (record->public_b64 != key.public_b64) return "the record holds another key";
  return "";
}

std::string KeyRecordName(std::string_view selector, std::string_view domain) {
  return fmt::format("{}._domainkey.{}", selector, domain);
}

std::string ZoneLine(std::string_view selector, std::string_view domain, std::string_view text) {
  std::string strings;
  for (std::size_t i = 0; i < text.size(); i += 255) {
    if (!strings.empty()) strings += ' ';
    strings += fmt::format("\"{}\"", text.substr(i, 255));
  }
  return fmt::format("{}. IN TXT ( {} )", KeyRecordName(selector, domain), strings);
}

}  // namespace danerelay::relay::dkim
