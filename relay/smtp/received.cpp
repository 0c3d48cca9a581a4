#include "relay/smtp/received.hpp"

#include <fmt/format.h>
#include <strings.h>

#include <algorithm>
#include <string_view>

namespace danerelay::relay {

std::string FormatReceived(const ReceivedInfo& info) {
  // RFC 5321 §4.1.3: IPv6 address literals carry the "IPv6:" tag.
  const bool v6 = info.client_address.find(':') != std::string::npos;
  // RFC 5321 §4.4 wants a From-domain; .invalid (RFC 2606) says it is withheld on purpose.
  std::string out = info.hide_client
                        ? std::string("Received: from client.invalid\r\n")
                        : fmt::format("Received: from {} (unknown [{}{}])\r\n", info.helo,
                                      v6 ? "IPv6:" : "", info.client_address);
  if (!info.tls.empty()) out += fmt::format("\t(using {})\r\n", info.tls);
  out +=
      fmt::format("\tby {} (danerelay) with {} id {}", info.hostname, info.protocol, info.queue_id);
  if (!info.for_recipient.empty()) out += fmt::format("\r\n\tfor <{}>", info.for_recipient);
  out += fmt::format("; {}\r\n", queue::FormatRfc5322Date(info.time));
  return out;
}

void RemoveHeaderFields(std::string& content, const std::vector<std::string>& names) {
  if (names.empty()) return;
  const auto named = [&](std::string_view line) {
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) return false;
    std::string_view name = line.substr(0, colon);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
    return std::any_of(names.begin(), names.end(), [&](const std::string& n) {
      return n.size() == name.size() && strncasecmp(n.data(), name.data(), n.size()) == 0;
    });
  };
  std::string out;
  out.reserve(content.size());
  std::size_t at = 0;
  bool dropping = false;
  while (at < content.size()) {
    const std::size_t eol = content.find("\r\n", at);
    const std::size_t next = eol == std::string::npos ? content.size() : eol + 2;
    const std::string_view line(content.data() + at, next - at);
    if (line == "\r\n") break;  // the end of the header: the rest is the body
    const bool continuation = line[0] == ' ' || line[0] == '\t';
    if (!continuation) dropping = named(line);
    if (!dropping) out.append(line);
    at = next;
  }
  out.append(content, at, std::string::npos);
  content = std::move(out);
}

}  // namespace danerelay::relay
