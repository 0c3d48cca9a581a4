#include "relay/dkim/slot.hpp"

#include <fmt/format.h>

#include "relay/daemon/logging.hpp"
#include "relay/daemon/metrics.hpp"

namespace danerelay::relay::dkim {

tl::expected<void, std::string> SignerSlot::Load(const DkimOptions& options,
                                                 const std::string& hostname) {
  std::shared_ptr<const Signer> fresh;
  std::string own = options.notices_domain.empty() ? hostname : options.notices_domain;
  if (!options.keys.empty()) {
    auto made = Signer::Make(options);
    if (!made) return tl::unexpected(made.error());
    fresh = std::move(*made);
    for (const auto& name : fresh->Ed25519Keys()) {
      Log(Service::kCleanup)
          .warn(
              "[[dkim.key]] {} is Ed25519: libopendkim 2.11.0 does not free an Ed25519 key "
              "after signing, so the daemon grows by about 0.5 KiB per message signed with it "
              "(RSA keys do not); see danerelay.toml(5)",
              name);
    }
    const std::string d = fresh->OwnKeyDomain(own);
    if (!d.empty() && hostname != d && !hostname.ends_with("." + d)) {
      // Bounces and notices are From MAILER-DAEMON@hostname: DMARC aligns d= with that.
      Log(Service::kCleanup)
          .warn(
              "danerelay's own mail is From MAILER-DAEMON@{} but signed d={} ([dkim] "
              "notices_domain): DMARC does not align the two; use a key for {} or a parent",
              hostname, d, hostname);
    }
    if (d.empty()) {
      Log(Service::kCleanup)
          .warn(
              "no [[dkim.key]] for {} (or a parent domain): danerelay's own mail (bounces, "
              "delay warnings, TLS reports) goes out unsigned; set [dkim] notices_domain or "
              "add a key",
              own);
    }
  }
  std::lock_guard lock(mutex_);
  signer_ = std::move(fresh);
  own_domain_ = std::move(own);
  return {};
}

std::shared_ptr<const Signer> SignerSlot::Current(std::string* own_domain) const {
  std::lock_guard lock(mutex_);
  if (own_domain) *own_domain = own_domain_;
  return signer_;
}

std::optional<SignResult> SignerSlot::SignSubmission(std::string& content,
                                                     const Submission& from) const {
  const auto signer = Current(nullptr);
  if (!signer) return std::nullopt;
  return signer->Sign(content, from);
}

void Report(const std::string& id, const SignResult& r) {
  Metrics::Get().Add("danerelay_dkim_total", fmt::format("outcome=\"{}\"", OutcomeName(r.outcome)));
  auto& log = Log(Service::kCleanup);
  if (r.outcome == Outcome::kSigned) {
    log.info("{}: DKIM-Signature field added ({})", id, r.detail);
  } else if (r.outcome == Outcome::kError) {
    log.warn("{}: not DKIM-signed: {}, From domain {}", id, r.detail, r.domain);
  } else {
    log.info("{}: not DKIM-signed ({}): {}", id, OutcomeName(r.outcome), r.detail);
  }
}

std::optional<SignResult> SignerSlot::SignOwn(std::string& content, const std::string& id) const {
  std::string domain;
  const auto signer = Current(&domain);
  if (!signer) return std::nullopt;
  SignResult r = signer->SignOwn(content, domain);
  if (r.outcome == Outcome::kSigned) {
    Log(Service::kCleanup).info("{}: DKIM-Signature field added ({})", id, r.detail);
  } else if (r.outcome == Outcome::kError) {
    Log(Service::kCleanup).warn("{}: not DKIM-signed: {}", id, r.detail);
  }
  return r;
}

}  // namespace danerelay::relay::dkim
