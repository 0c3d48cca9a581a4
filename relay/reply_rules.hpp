#pragma once
// [[shaping.on_reply]]: rules that suspend a recipient domain when one of its MX hosts gives a
// reply that says "slow down" (a provider's rate limit). A rule's `match` is a POSIX extended
// regular expression, matched case-insensitively anywhere in the reply as one line: "code
// enhanced-code text" (Reply::Text(), lines joined by spaces), cut to kMaxReplyText bytes.
// The first rule that matches decides; the operator's rules come before the shipped ones, so a
// rule with `suspend = "0s"` ahead of a shipped one turns it off. No Asio: config/ uses it to
// check the patterns at load.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

namespace danerelay::relay {

struct ReplyRule {
  std::string match;                // POSIX ERE, case-insensitive
  std::chrono::seconds suspend{0};  // 0: the reply matches, nothing is suspended
  // Instead of a suspension: at most this many connections to the site for `lower_for` (a
  // server that says "too many connections" still takes mail, just less at once).
  std::uint32_t connections = 0;  // 0: not this kind of rule
  std::chrono::seconds lower_for{0};
  // Whether a match does anything (a "0s" rule only stops the rules after it).
  bool Acts() const { return suspend.count() > 0 || connections > 0; }
};

// The well-known throttling replies of large providers (reply_rules.cpp says where each is from).
const std::vector<ReplyRule>& ShippedReplyRules();

// "" when `pattern` compiles as a POSIX ERE, else why not (regerror's words).
std::string CheckReplyPattern(const std::string& pattern);

class ReplyMatcher {
 public:
  static constexpr std::size_t kMaxReplyText = 512;
  // `rules` (the operator's) then the shipped ones. Fails naming the first pattern that does
  // not compile (config/ has refused those already).
  static tl::expected<ReplyMatcher, std::string> Make(const std::vector<ReplyRule>& rules);
  // The first rule matching `reply`, nullptr when none does.
  const ReplyRule* Match(std::string_view reply) const;

 private:
  struct Compiled;
  std::vector<std::shared_ptr<const Compiled>> rules_;
};

}  // namespace danerelay::relay
