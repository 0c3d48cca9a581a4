#pragma once
// The sending quotas in the server (relay/inbound/sending_quotas.hpp does the counting): the
// answer a session gets, the one warning per key and window, the metric
// danerelay_quota_rejects_total{kind}, and the counters kept in the queue (schema 16) so that
// day windows survive a restart. Runs on the io thread; the queue is reached through the
// committer (each change joins the next group commit; at most one write is in flight).
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "queue/committer.hpp"
#include "relay/inbound/sending_quotas.hpp"

namespace asio {
class io_context;
}

namespace danerelay::relay {

class QuotaGate : public std::enable_shared_from_this<QuotaGate> {
 public:
  QuotaGate(asio::io_context& io, queue::Committer& committer, QuotaOptions options);
  // Reads the counters kept in the queue (they are added when the read returns).
  void Start();
  void Reload(QuotaOptions options) { quotas_.SetOptions(std::move(options)); }

  // For SessionParams::quota: nullopt when counted, else the refusal's text.
  std::optional<std::string> Check(const SendingQuotas::Sender& who, bool recipient);

 private:
  void Persist();

  asio::io_context& io_;
  queue::Committer& committer_;
  SendingQuotas quotas_;
  bool writing_ = false;
};

}  // namespace danerelay::relay
