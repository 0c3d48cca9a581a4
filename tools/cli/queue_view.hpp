#pragma once
// How the danerelay command shows the queue: a mailq-like table, a detailed view of one
// message, and JSON (one object per line) for scripts.
#include <ostream>
#include <string>
#include <vector>

#include "queue/message.hpp"

namespace danerelay::tools {

void PrintQueueTable(std::ostream& out, const std::vector<queue::MessageInfo>& messages);
void PrintQueueJson(std::ostream& out, const std::vector<queue::MessageInfo>& messages);
// With the attempt history: one entry per recipient per host tried.
void PrintMessage(std::ostream& out, const queue::MessageInfo& message, const std::string& content,
                  const std::vector<queue::AttemptRecord>& attempts);
void PrintMessageJson(std::ostream& out, const queue::MessageInfo& message,
                      const std::string& content,
                      const std::vector<queue::AttemptRecord>& attempts);

// The header section of a message (up to the first empty line), one entry per field with its
// continuation lines unfolded into it.
std::vector<std::pair<std::string, std::string>> ParseHeaders(const std::string& content);

}  // namespace danerelay::tools
