#include "relay/dkim/signer.hpp"

#include <algorithm>

#include "relay/dkim/headers.hpp"
#include "relay/dkim/opendkim.hpp"

namespace danerelay::relay::dkim {

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kSigned:
      return "signed";
    case Outcome::kNoKey:
      return "no_key";
    case Outcome::kNotSource:
      return "not_source";
    case Outcome::kNotPermitted:
      return "not_permitted";
    case Outcome::kAlreadySigned:
      return "already_signed";
    case Outcome::kMalformed:
      return "malformed";
    case Outcome::kError:
      break;
  }
  return "error";
}

// Its first kOversigned fields are the oversigned ones.
constexpr std::size_t kOversigned = 15;

const std::vector<std::string>& DefaultSignedHeaders() {
  static const std::vector<std::string> kSigned = {
      "From", "Sender", "Reply-To", "Subject", "Date", "Message-ID", "To", "Cc", "MIME-Version",
      "Content-Type", "Content-Transfer-Encoding", "In-Reply-To", "References", "List-Unsubscribe",
      "List-Unsubscribe-Post",
      // signed as often as they occur
      "List-Id", "List-Help", "List-Post", "List-Owner", "List-Archive", "Resent-Date",
      "Resent-From", "Resent-To", "Resent-Cc"};
  return kSigned;
}

const std::vector<std::string>& OversignedHeaders() {
  static const std::vector<std::string> kHeaders(DefaultSignedHeaders().begin(),
                                                 DefaultSignedHeaders().begin() + kOversigned);
  return kHeaders;
}

namespace {

// The oversigned fields among those signed (an operator's shorter h= list stays as given).
std::vector<std::string> Oversign(const std::vector<std::string>& signed_fields) {
  std::vector<std::string> out;
  for (const auto& name : OversignedHeaders()) {
    if (std::any_of(signed_fields.begin(), signed_fields.end(),
                    [&](const std::string& f) { return EqualsIgnoreCase(f, name); })) {
      out.push_back(name);
    }
  }
  return out;
}

}  // namespace

Signer::Signer() = default;
Signer::~Signer() = default;

tl::expected<std::shared_ptr<const Signer>, std::string> Signer::Make(const DkimOptions& options) {
  std::shared_ptr<Signer> s(new Signer());
  s->options_ = options;
  for (const auto& k : options.keys) {
    auto key = LoadKey(k.key_file);
    if (!key)
      return tl::unexpected("DKIM key " + k.selector + "._domainkey." + k.domain + ": " +
                            key.error());
    s->keys_.push_back({k, std::move(*key)});
  }
  const auto& headers = options.headers.empty() ? DefaultSignedHeaders() : options.headers;
  auto lib = OpenDkim::Make(headers, Oversign(headers), options.expire);
  if (!lib) return tl::unexpected(lib.error());
  s->lib_ = std::move(*lib);
  return std::shared_ptr<const Signer>(std::move(s));
}

bool Signer::IsSource(const Submission& from) const {
  if (from.authenticated) return options_.sign_auth;
  if (!from.trusted || !options_.sign_trusted) return false;
  if (options_.trusted_sources.empty()) return true;
  return std::any_of(options_.trusted_sources.begin(), options_.trusted_sources.end(),
                     [&](const IpNetwork& n) { return n.Contains(from.client_ip); });
}

// The keys of `domain`, else (sign_subdomains) of its closest parent with keys; `d` is the
// domain they sign for.
std::vector<const Signer::LoadedKey*> Signer::KeysFor(const std::string& domain, std::string* d,
                                                      bool parents) const {
  std::vector<const LoadedKey*> out;
  std::string candidate = domain;
  for (;;) {
    for (const auto& k : keys_) {
      if (EqualsIgnoreCase(k.where.domain, candidate)) out.push_back(&k);
    }
    if (!out.empty() || !parents) break;
    const auto dot = candidate.find('.');
    if (dot == std::string::npos) break;
    candidate.erase(0, dot + 1);
  }
  *d = candidate;
  return out;
}

SignResult Signer::SignWith(std::string& content, const std::string& domain,
                            const std::vector<const LoadedKey*>& keys, const std::string& d) const {
  std::size_t body = 0;
  const auto fields = SplitHeader(content, &body);
  if (HasNul(std::string_view(content).substr(0, body))) {
    return {Outcome::kMalformed, domain, "NUL byte in the header"};
  }
  if (std::any_of(fields.begin(), fields.end(), [](const auto& f) { return f.name.empty(); })) {
    return {Outcome::kMalformed, domain, "a header line that is no field (no colon)"};
  }
  const auto signed_for = SignedDomains(fields);
  if (std::find(signed_for.begin(), signed_for.end(), d) != signed_for.end()) {
    return {Outcome::kAlreadySigned, domain, "already signed for d=" + d};
  }
  std::string added, detail;
  for (const LoadedKey* k : keys) {
    auto field = lib_->Sign(content, k->key, d, k->where.selector);
    if (!field) {
      return {Outcome::kError, domain, "s=" + k->where.selector + " d=" + d + ": " + field.error()};
    }
    added += *field;
    detail += (detail.empty() ? "" : ", ") + std::string("d=") + d + " s=" + k->where.selector +
              " (" + AlgorithmName(k->key.algorithm) + ")";
  }
  content.insert(0, added);
  return {Outcome::kSigned, domain, detail};
}

SignResult Signer::Sign(std::string& content, const Submission& from) const {
  std::size_t body = 0;
  const auto address = FromAddress(SplitHeader(content, &body));
  const std::string domain = address ? address->substr(address->rfind('@') + 1) : "";
  if (!IsSource(from)) {
    return {
        Outcome::kNotSource, domain,
        from.authenticated
            ? "authenticated clients are not a source (sources)"
            : "client is not authenticated and not a trusted source (sources, trusted_sources)"};
  }
  if (!address) return {Outcome::kNoKey, "", address.error()};
  if (from.authenticated && from.may_use_from && !from.may_use_from(*address)) {
    return {
        Outcome::kNotPermitted, domain,
        "header From " + *address + " is not among the senders [auth] allows user " + from.user};
  }
  std::string d;
  const auto keys = KeysFor(domain, &d, options_.sign_subdomains);
  if (keys.empty()) return {Outcome::kNoKey, domain, "no key for the From domain " + domain};
  return SignWith(content, domain, keys, d);
}

SignResult Signer::SignOwn(std::string& content, const std::string& domain) const {
  std::string d;
  const auto keys = KeysFor(domain, &d, true);
  if (keys.empty()) return {Outcome::kNoKey, domain, "no key for the notices domain " + domain};
  return SignWith(content, domain, keys, d);
}

std::vector<std::string> Signer::Ed25519Keys() const {
  std::vector<std::string> out;
  for (const auto& k : keys_) {
    if (k.key.algorithm == Algorithm::kEd25519Sha256) {
      out.push_back(k.where.selector + "._domainkey." + k.where.domain);
    }
  }
  return out;
}

std::string Signer::OwnKeyDomain(const std::string& domain) const {
  std::string d;
  return KeysFor(domain, &d, true).empty() ? "" : d;
}

}  // namespace danerelay::relay::dkim
