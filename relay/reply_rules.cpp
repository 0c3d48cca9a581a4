#include "relay/reply_rules.hpp"

#include <regex.h>

namespace danerelay::relay {

const std::vector<ReplyRule>& ShippedReplyRules() {
  using std::chrono::minutes;
  static const std::vector<ReplyRule> rules = {
      // Gmail: "421-4.7.28 ... Our system has detected an unusual rate of unsolicited mail
      // originating from your IP address ... temporarily rate limited"
      // (mail-in-a-box/mailinabox#1771).
      {"^421 4\\.7\\.28 ", minutes(30)},
      // Not shipped: Gmail's per-mailbox "450-4.2.1 ... receiving mail at a rate" (sisimai
      // #466). It is about one mailbox: suspending the site for it would let anyone who can
      // make one Gmail mailbox busy stop the organisation's mail to all of Google. The
      // recipient is deferred as any 4xx.
      // "452 4.3.2 Connection rate limit exceeded." (sisimai/p5-sisimai#466).
      {"^4[0-9][0-9] 4\\.3\\.2 .*connection rate limit", minutes(10)},
      // Microsoft 365 / Outlook.com: "451 4.7.500 Server busy. Please try again later from
      // [IP]. (S77714)" (MicrosoftDocs/OfficeDocs-Exchange#2499; 4.7.500-699, "fix error code
      // 451 4.7.500-699 (ASxxx) in Exchange Online").
      {"^451 4\\.7\\.[56][0-9][0-9] .*server busy", minutes(15)},
  };
  return rules;
}

struct ReplyMatcher::Compiled {
  regex_t regex{};
  bool compiled = false;  // regfree only what regcomp made
  ReplyRule rule;
  Compiled() = default;
  Compiled(const Compiled&) = delete;
  Compiled& operator=(const Compiled&) = delete;
  ~Compiled() {
    if (compiled) regfree(&regex);
  }
};

namespace {

constexpr int kFlags = REG_EXTENDED | REG_ICASE | REG_NOSUB;

std::string Why(int rc, const regex_t* re) {
  char buf[256];
  regerror(rc, re, buf, sizeof buf);
  return buf;
}

}  // namespace

std::string CheckReplyPattern(const std::string& pattern) {
  if (pattern.empty()) return "an empty pattern matches every reply";
  regex_t re;
  const int rc = regcomp(&re, pattern.c_str(), kFlags);
  if (rc != 0) return "not a POSIX extended regular expression: " + Why(rc, &re);
  regfree(&re);
  return "";
}

tl::expected<ReplyMatcher, std::string> ReplyMatcher::Make(const std::vector<ReplyRule>& rules) {
  ReplyMatcher m;
  std::vector<ReplyRule> all = rules;
  all.insert(all.end(), ShippedReplyRules().begin(), ShippedReplyRules().end());
  for (const auto& r : all) {
    auto c = std::make_shared<Compiled>();
    if (const int rc = regcomp(&c->regex, r.match.c_str(), kFlags); rc != 0) {
      return tl::unexpected("on_reply match '" + r.match + "': " + Why(rc, &c->regex));
    }
    c->compiled = true;
    c->rule = r;
    m.rules_.push_back(std::move(c));
  }
  return m;
}

const ReplyRule* ReplyMatcher::Match(std::string_view reply) const {
  // Bounded: a server's reply may be long; what tells a throttle comes first.
  std::string text(reply.substr(0, kMaxReplyText));
  // Servers echo the addresses of the transaction ("<rate limit@victim.example>: ..."): those
  // are chosen by senders, not by the server, so they match nothing.
  for (size_t open = text.find('<'); open != std::string::npos; open = text.find('<', open + 1)) {
    const size_t close = text.find('>', open);
    if (close == std::string::npos) break;
    text.replace(open, close - open + 1, "<>");
  }
  for (const auto& c : rules_) {
    if (regexec(&c->regex, text.c_str(), 0, nullptr, 0) == 0) return &c->rule;
  }
  return nullptr;
}

}  // namespace danerelay::relay
