#include "relay/smtp/received.hpp"

#include <fmt/format.h>

namespace danerelay::relay {

std::string FormatReceived(const ReceivedInfo& info) {
  // RFC 5321 §4.1.3: IPv6 address literals carry the "IPv6:" tag.
  const bool v6 = info.client_address.find(':') != std::string::npos;
  std::string out = fmt::format("Received: from {} (unknown [{}{}])\r\n", info.helo,
                                v6 ? "IPv6:" : "", info.client_address);
  if (!info.tls.empty()) out += fmt::format("\t(using {})\r\n", info.tls);
  out +=
      fmt::format("\tby {} (danerelay) with {} id {}", info.hostname, info.protocol, info.queue_id);
  if (!info.for_recipient.empty()) out += fmt::format("\r\n\tfor <{}>", info.for_recipient);
  out += fmt::format("; {}\r\n", queue::FormatRfc5322Date(info.time));
  return out;
}

}  // namespace danerelay::relay
