#pragma once
// The Received header this relay prepends to every message (RFC 5321 §4.4, RFC 5322 §3.6.7),
// in the layout Postfix uses so that operators and filters read it the same way.
#include <string>
#include <vector>

#include "queue/message.hpp"

namespace danerelay::relay {

struct ReceivedInfo {
  std::string helo;
  std::string client_address;  // "192.0.2.1" or "2001:db8::1"
  std::string hostname;
  std::string protocol;  // "ESMTPS", RFC 3848
  std::string queue_id;
  std::string tls;            // "TLSv1.3 with cipher ..." or empty
  std::string for_recipient;  // only when the message has exactly one recipient
  queue::TimePoint time;
  bool hide_client = false;  // [privacy] hide_client: "from client.invalid", no name or address
};

// Folded header field ending in CRLF.
std::string FormatReceived(const ReceivedInfo& info);

// Removes every field named in `names` (any case, with its folded lines) from the header of
// `content` ([privacy] remove_headers); the body is left alone.
void RemoveHeaderFields(std::string& content, const std::vector<std::string>& names);

}  // namespace danerelay::relay
