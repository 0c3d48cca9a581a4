#include "relay/inbound/archive.hpp"

#include <strings.h>

#include <algorithm>

namespace danerelay::relay {

void AddArchiveRecipients(queue::NewMessage& message, const ArchiveOptions& archive) {
  const auto add = [&](const std::string& address) {
    if (address.empty()) return;
    const bool there = std::any_of(
        message.recipients.begin(), message.recipients.end(),
        [&](const auto& r) { return strcasecmp(r.address.c_str(), address.c_str()) == 0; });
    if (!there) message.recipients.push_back({address, queue::kNotifyNever, ""});
  };
  add(archive.recipient);
  const auto at = message.sender.rfind('@');
  if (at == std::string::npos) return;  // the null sender: the global archive only
  std::string domain = message.sender.substr(at + 1);
  for (char& c : domain) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (const auto it = archive.by_sender_domain.find(domain); it != archive.by_sender_domain.end()) {
    add(it->second);
  }
}

}  // namespace danerelay::relay
