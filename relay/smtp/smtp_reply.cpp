#include "relay/smtp/smtp_reply.hpp"

#include <cctype>

#include "queue/message.hpp"

namespace danerelay::relay {
namespace {

constexpr size_t kMaxReplyLine = 4096;  // generous: RFC 5321 §4.5.3.1.5 says 512
constexpr size_t kMaxReplyLines = 100;

bool IsEnhanced(std::string_view s) {
  // class "." subject "." detail, RFC 3463 §2: [245].\d{1,3}.\d{1,3}
  if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
  size_t pos = 2;
  for (int part = 0; part < 2; ++part) {
    size_t digits = 0;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) ++pos, ++digits;
    if (digits == 0 || digits > 3) return false;
    if (part == 0) {
      if (pos >= s.size() || s[pos] != '.') return false;
      ++pos;
    }
  }
  return pos == s.size();
}

}  // namespace

std::string Reply::Text() const {
  std::string out = std::to_string(code);
  for (const auto& l : lines) out += " " + l;
  return out;
}

bool Reply::HasExtension(std::string_view keyword) const {
  for (size_t i = 1; i < lines.size(); ++i) {
    std::string_view l = lines[i];
    const std::string_view word = l.substr(0, l.find(' '));
    if (word.size() != keyword.size()) continue;
    bool same = true;
    for (size_t k = 0; k < word.size(); ++k) {
      same = same && std::toupper(static_cast<unsigned char>(word[k])) == keyword[k];
    }
    if (same) return true;
  }
  return false;
}

std::vector<std::string> Reply::ExtensionParams(std::string_view keyword) const {
  for (size_t i = 1; i < lines.size(); ++i) {
    std::string l = lines[i];
    for (char& c : l) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (l != keyword && !l.starts_with(std::string(keyword) + " ")) continue;
    std::vector<std::string> out;
    for (size_t pos = keyword.size(); pos < l.size();) {
      const size_t start = l.find_first_not_of(' ', pos);
      if (start == std::string::npos) break;
      const size_t end = l.find(' ', start);
      out.push_back(l.substr(start, end - start));
      pos = end == std::string::npos ? l.size() : end;
    }
    return out;
  }
  return {};
}

std::optional<tl::expected<Reply, std::string>> ReplyParser::Next() {
  for (;;) {
    const size_t lf = buffer_.find('\n');
    if (lf == std::string::npos) {
      if (buffer_.size() > kMaxReplyLine) return tl::unexpected(std::string("reply line too long"));
      return std::nullopt;
    }
    std::string line = buffer_.substr(0, lf);
    buffer_.erase(0, lf + 1);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.size() < 3 || !std::isdigit(static_cast<unsigned char>(line[0])) ||
        !std::isdigit(static_cast<unsigned char>(line[1])) ||
        !std::isdigit(static_cast<unsigned char>(line[2])) ||
        (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
      return tl::unexpected("malformed reply: " + line.substr(0, 80));
    }
    const int code = std::stoi(line.substr(0, 3));
    if (code < 200 || code > 599)
      return tl::unexpected("reply code out of range: " + line.substr(0, 80));
    if (!partial_.lines.empty() && code != partial_.code) {
      return tl::unexpected(std::string("reply code changed within a multiline reply"));
    }
    partial_.code = code;
    // Reply text goes into logs, the attempts table and notices: no CR, NUL or 8-bit bytes.
    std::string text = line.size() > 4 ? queue::Printable(line.substr(4), kMaxReplyLine) : "";
    if (partial_.lines.empty()) {
      const std::string_view first(text);
      const auto sp = first.find(' ');
      const std::string_view word = first.substr(0, sp);
      // The enhanced code's class must agree with the reply's (RFC 3463 §2).
      if (IsEnhanced(word) && word[0] == line[0]) partial_.enhanced = std::string(word);
    }
    partial_.lines.push_back(std::move(text));
    if (partial_.lines.size() > kMaxReplyLines) {
      return tl::unexpected(std::string("reply has too many lines"));
    }
    if (line.size() == 3 || line[3] == ' ') {
      Reply done = std::move(partial_);
      partial_ = Reply{};
      return done;
    }
  }
}

}  // namespace danerelay::relay
