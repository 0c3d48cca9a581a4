#include "relay/inbound/quota_gate.hpp"

#include <fmt/format.h>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include "relay/daemon/logging.hpp"
#include "relay/daemon/metrics.hpp"

namespace danerelay::relay {
namespace {

// Counters of windows up to 31 days ([quotas] allows no longer) are kept; older rows go.
constexpr auto kKeep = std::chrono::hours(24 * 32);

}  // namespace

QuotaGate::QuotaGate(asio::io_context& io, queue::Committer& committer, QuotaOptions options)
    : io_(io), committer_(committer), quotas_(std::move(options)) {}

void QuotaGate::Start() {
  auto self = shared_from_this();
  committer_.Post([self](queue::Store& store) {
    auto rows = store.LoadQuotaUsage();
    asio::post(self->io_, [self, rows = std::move(rows)] {
      if (!rows) {
        Log(Service::kSmtpd).warn("sending quotas: counters not read: {}", rows.error().message);
        return;
      }
      self->quotas_.Load(*rows, queue::Clock::now());
      self->quotas_.TakeChanged();  // what was read back needs no writing
    });
  });
}

std::optional<std::string> QuotaGate::Check(const SendingQuotas::Sender& who, bool recipient) {
  if (quotas_.empty()) return std::nullopt;
  auto refused = quotas_.Count(who, recipient, queue::Clock::now());
  if (!refused) {
    Persist();
    return std::nullopt;
  }
  Metrics::Get().Add("danerelay_quota_rejects_total", fmt::format("kind=\"{}\"", refused->kind));
  if (refused->first) {
    Log(Service::kSmtpd)
        .warn("sending quota exceeded: {}: {}; {} refused with 450 4.7.1 until the window ends",
              refused->key, refused->limit, recipient ? "RCPT" : "MAIL");
  }
  return fmt::format("Sending quota exceeded ({}: {}); try again later", refused->key,
                     refused->limit);
}

// One write in flight; what changes meanwhile goes in the next. Each joins a group commit.
void QuotaGate::Persist() {
  if (writing_) return;
  auto rows = quotas_.TakeChanged();
  if (rows.empty()) return;
  writing_ = true;
  const auto drop_before = queue::Clock::now() - kKeep;
  auto self = shared_from_this();
  committer_.Write([rows = std::move(rows),
                    drop_before](queue::Store& s) { return s.PutQuotaUsage(rows, drop_before); },
                   [self](tl::expected<void, queue::StoreError> done) {
                     asio::post(self->io_, [self, done = std::move(done)] {
                       if (!done) {
                         Log(Service::kSmtpd)
                             .warn("sending quotas: counters not written: {}",
                                   done.error().message);
                       }
                       self->writing_ = false;
                       self->Persist();
                     });
                   });
}

}  // namespace danerelay::relay
