#include "relay/dkim/headers.hpp"

#include <algorithm>
#include <cctype>

#include "dns/idn.hpp"

namespace danerelay::relay::dkim {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// For a reason in a log line: no controls, no 8-bit bytes, bounded.
std::string Printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 100)) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u >= 32 && u < 127 ? c : '?');
  }
  return out;
}

// Letters, digits and hyphens in labels of 1 to 63 octets (RFC 1123 §2.1), as d= must be.
bool IsHostName(std::string_view d) {
  if (d.empty() || d.size() > 253) return false;
  std::size_t label = 0;
  for (char c : d) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
    } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '-') {
      if (++label > 63) return false;
    } else {
      return false;
    }
  }
  return label > 0;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// The value of a field: after the colon.
std::string_view Value(const HeaderField& f) {
  const auto colon = f.text.find(':');
  return colon == std::string_view::npos ? std::string_view() : f.text.substr(colon + 1);
}

// Removes RFC 5322 §3.2.2 comments and quoted strings' contents (display names may hold '@',
// ',' or '<'), keeping the rest. Unbalanced input keeps what was read so far.
std::string StripCommentsAndQuotes(std::string_view v) {
  std::string out;
  int depth = 0;
  bool quoted = false;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (c == '\\' && (quoted || depth > 0)) {
      ++i;
    } else if (quoted) {
      quoted = c != '"';
    } else if (c == '(') {
      ++depth;
    } else if (c == ')' && depth > 0) {
      --depth;
    } else if (depth == 0) {
      if (c == '"')
        quoted = true;
      else
        out.push_back(c);
    }
  }
  return out;
}

}  // namespace

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::vector<HeaderField> SplitHeader(std::string_view content, std::size_t* body_offset) {
  std::vector<HeaderField> fields;
  std::size_t pos = 0;
  while (pos < content.size()) {
    std::size_t end = content.find('\n', pos);
    if (end == std::string_view::npos) end = content.size();
    std::string_view line = content.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::size_t next = end == content.size() ? end : end + 1;
    if (line.empty()) {
      pos = next;
      break;
    }
    const bool continuation = line.front() == ' ' || line.front() == '\t';
    if (continuation && !fields.empty()) {
      auto& f = fields.back();
      f.text = std::string_view(f.text.data(), line.data() + line.size() - f.text.data());
    } else if (const std::size_t colon = line.find(':'); colon != std::string_view::npos) {
      fields.push_back({Trim(line.substr(0, colon)), line});  // RFC 5322 §4.5.2: "From :"
    } else {
      fields.push_back({std::string_view(), line});  // not a field: kept, matched by no name
    }
    pos = next;
  }
  if (body_offset) *body_offset = std::min(pos, content.size());
  return fields;
}

tl::expected<std::string, std::string> FromAddress(const std::vector<HeaderField>& fields) {
  const HeaderField* from = nullptr;
  for (const auto& f : fields) {
    if (!EqualsIgnoreCase(f.name, "From")) continue;
    if (from) return tl::unexpected(std::string("several From header fields"));
    from = &f;
  }
  if (!from) return tl::unexpected(std::string("no From header field"));
  std::string v = StripCommentsAndQuotes(Value(*from));
  if (v.find(',') != std::string::npos) {
    return tl::unexpected(std::string("several mailboxes in From"));
  }
  std::string_view addr = v;
  if (const auto lt = addr.rfind('<'); lt != std::string_view::npos) {
    const auto gt = addr.find('>', lt);
    addr = addr.substr(lt + 1, gt == std::string_view::npos ? gt : gt - lt - 1);
  }
  addr = Trim(addr);
  const auto at = addr.rfind('@');
  std::string domain(at == std::string_view::npos ? "" : Trim(addr.substr(at + 1)));
  while (!domain.empty() && domain.back() == '.') domain.pop_back();
  if (domain.empty() || domain.find_first_of(" \t\r\n<>@;\"") != std::string::npos) {
    return tl::unexpected(std::string("no domain in From"));
  }
  // d= is the A-label form (RFC 8616 §4); DMARC compares it with the From domain in that form.
  auto ascii = dns::ToAsciiDomain(domain);
  if (!ascii) return tl::unexpected("From domain " + Printable(domain) + ": " + ascii.error());
  if (!IsHostName(*ascii)) {
    return tl::unexpected("From domain " + Printable(domain) + " is not a host name");
  }
  const std::string local(Trim(addr.substr(0, at)));
  const bool bad_local = std::any_of(local.begin(), local.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 32 || u == 127 || c == '<' || c == '>';
  });
  if (local.empty() || bad_local) return tl::unexpected(std::string("no mailbox in From"));
  return local + "@" + *ascii;
}

tl::expected<std::string, std::string> FromDomain(const std::vector<HeaderField>& fields) {
  auto address = FromAddress(fields);
  if (!address) return tl::unexpected(address.error());
  return address->substr(address->rfind('@') + 1);
}

bool HasNul(std::string_view header) { return header.find('\0') != std::string_view::npos; }

std::vector<std::string> SignedDomains(const std::vector<HeaderField>& fields) {
  std::vector<std::string> domains;
  for (const auto& f : fields) {
    if (!EqualsIgnoreCase(f.name, "DKIM-Signature")) continue;
    std::string v;  // folding whitespace is allowed around tags (RFC 6376 §3.2)
    for (char c : Value(f)) {
      if (c != ' ' && c != '\t' && c != '\r' && c != '\n') v.push_back(c);
    }
    std::string_view rest = v;
    while (!rest.empty()) {
      const auto semi = rest.find(';');
      const std::string_view tag = rest.substr(0, semi);
      if (tag.starts_with("d=")) domains.push_back(Lower(tag.substr(2)));
      if (semi == std::string_view::npos) break;
      rest.remove_prefix(semi + 1);
    }
  }
  return domains;
}

}  // namespace danerelay::relay::dkim
