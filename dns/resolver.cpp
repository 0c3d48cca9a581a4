#include "dns/resolver.hpp"

#include <arpa/inet.h>
#include <unbound.h>

#include <asio/async_result.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <unordered_map>

namespace danerelay::dns {
namespace {

constexpr int kTypeA = 1, kTypeMx = 15, kTypeAaaa = 28, kTypeTlsa = 52;
constexpr int kClassIn = 1;
constexpr int kRcodeNxDomain = 3;

struct UbCtxDelete {
  void operator()(ub_ctx* c) const { ub_ctx_delete(c); }
};
struct UbResultFree {
  void operator()(ub_result* r) const { ub_resolve_free(r); }
};
using UbResultPtr = std::unique_ptr<ub_result, UbResultFree>;

struct RawResult {
  int err = 0;
  bool timed_out = false;
  UbResultPtr result;
};

std::string StripDot(std::string name) {
  if (!name.empty() && name.back() == '.') name.pop_back();
  return name;
}

// Fills the common part from libunbound's result.
void Classify(const RawResult& raw, const std::string& qname, Answer& a) {
  a.canonical_name = qname;
  if (raw.timed_out) {
    a.rcode = Rcode::kFailed;
    a.dnssec = DnssecState::kFailed;
    a.why = "timeout";
    return;
  }
  if (raw.err != 0 || !raw.result) {
    a.rcode = Rcode::kFailed;
    a.dnssec = DnssecState::kFailed;
    a.why = ub_strerror(raw.err);
    return;
  }
  const ub_result* r = raw.result.get();
  if (r->canonname) a.canonical_name = StripDot(r->canonname);
  if (r->bogus) {
    a.rcode = Rcode::kFailed;
    a.dnssec = DnssecState::kBogus;
    a.why = r->why_bogus ? r->why_bogus : "DNSSEC validation failed";
    return;
  }
  a.dnssec = r->secure ? DnssecState::kSecure : DnssecState::kInsecure;
  if (r->rcode == kRcodeNxDomain || r->nxdomain) {
    a.rcode = Rcode::kNxDomain;
  } else if (r->rcode != 0) {
    a.rcode = Rcode::kFailed;
    a.dnssec = DnssecState::kFailed;
    a.why = fmt::format("rcode {}", r->rcode == 2 ? "SERVFAIL" : std::to_string(r->rcode));
  } else {
    a.rcode = r->havedata ? Rcode::kNoError : Rcode::kNoData;
  }
}

// Calls fn(rdata, length) for each record of a successful answer.
template <typename Fn>
void ForEachRdata(const RawResult& raw, Fn fn) {
  const ub_result* r = raw.result.get();
  for (int i = 0; r->data[i]; ++i) {
    fn(reinterpret_cast<const unsigned char*>(r->data[i]), static_cast<size_t>(r->len[i]));
  }
}

}  // namespace

struct Resolver::Impl : std::enable_shared_from_this<Impl> {
  asio::io_context& io;
  std::unique_ptr<ub_ctx, UbCtxDelete> ctx;
  asio::posix::stream_descriptor fd;
  std::chrono::milliseconds timeout;
  bool watching = false;

  struct Pending {
    Impl* impl;
    int id = 0;
    std::function<void(RawResult)> done;
    asio::steady_timer timer;
    explicit Pending(Impl* i) : impl(i), timer(i->io) {}
  };
  std::unordered_map<Pending*, std::unique_ptr<Pending>> pending;

  Impl(asio::io_context& i, ub_ctx* c, std::chrono::milliseconds t)
      : io(i), ctx(c), fd(i, ub_fd(c)), timeout(t) {}
  ~Impl() {
    fd.release();  // libunbound owns the descriptor
  }

  static void OnResult(void* mydata, int err, ub_result* result) {
    auto* p = static_cast<Pending*>(mydata);
    UbResultPtr owned(result);
    Impl* self = p->impl;
    auto it = self->pending.find(p);
    if (it == self->pending.end()) return;  // already timed out
    auto holder = std::move(it->second);
    self->pending.erase(it);
    holder->timer.cancel();
    holder->done(RawResult{err, false, std::move(owned)});
  }

  void Watch() {
    if (watching || pending.empty()) return;
    watching = true;
    fd.async_wait(asio::posix::stream_descriptor::wait_read,
                  [self = shared_from_this()](std::error_code ec) {
                    self->watching = false;
                    if (ec) return;
                    ub_process(self->ctx.get());
                    self->Watch();
                  });
  }

  asio::awaitable<RawResult> Query(const std::string& name, int type) {
    return asio::async_initiate<decltype(asio::use_awaitable), void(RawResult)>(
        [self = shared_from_this(), name, type](auto handler) {
          auto h = std::make_shared<decltype(handler)>(std::move(handler));
          auto ex = self->io.get_executor();
          auto p = std::make_unique<Pending>(self.get());
          Pending* key = p.get();
          p->done = [h, ex](RawResult r) {
            // Resume the caller from the event loop, never from inside ub_process.
            asio::post(ex, [h, r = std::make_shared<RawResult>(std::move(r))]() mutable {
              (*h)(std::move(*r));
            });
          };
          int id = 0;
          const int err = ub_resolve_async(self->ctx.get(), name.c_str(), type, kClassIn, key,
                                           &Impl::OnResult, &id);
          if (err != 0) {
            p->done(RawResult{err, false, nullptr});
            return;
          }
          p->id = id;
          p->timer.expires_after(self->timeout);
          p->timer.async_wait([self, key](std::error_code ec) {
            if (ec) return;
            auto it = self->pending.find(key);
            if (it == self->pending.end()) return;
            auto holder = std::move(it->second);
            self->pending.erase(it);
            ub_cancel(self->ctx.get(), holder->id);
            holder->done(RawResult{0, true, nullptr});
          });
          self->pending.emplace(key, std::move(p));
          self->Watch();
        },
        asio::use_awaitable);
  }
};

Resolver::Resolver(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Resolver::~Resolver() {
  for (auto& [key, p] : impl_->pending) {
    ub_cancel(impl_->ctx.get(), p->id);
    p->timer.cancel();
  }
  impl_->pending.clear();
  std::error_code ec;
  impl_->fd.cancel(ec);
}

tl::expected<int, std::string> CountTrustAnchors(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) {
    return tl::unexpected(
        fmt::format("trust anchor file {}: {}", file.string(),
                    std::filesystem::exists(file) ? "cannot be read" : "does not exist"));
  }
  int count = 0;
  std::string line;
  while (std::getline(in, line)) {
    line = line.substr(0, line.find(';'));  // zone-file comments
    std::istringstream words(line);
    for (std::string w; words >> w;) {
      if (w == "DS" || w == "DNSKEY") ++count;
    }
  }
  if (count == 0) {
    // libunbound would accept it and then call every answer insecure: opportunistic DANE off
    // for every domain, silently.
    return tl::unexpected(fmt::format(
        "trust anchor file {} holds no DS or DNSKEY record; without one no answer validates "
        "and DANE would be off for every domain",
        file.string()));
  }
  return count;
}

tl::expected<std::unique_ptr<Resolver>, std::string> Resolver::Create(
    asio::io_context& io, const ResolverOptions& options) {
  ub_ctx* raw = ub_ctx_create();
  if (!raw) return tl::unexpected(std::string("libunbound: cannot create a context"));
  std::unique_ptr<ub_ctx, UbCtxDelete> ctx(raw);
  auto fail = [](std::string what, int err) {
    return tl::unexpected(fmt::format("{}: {}", what, ub_strerror(err)));
  };
  // A thread, not a forked process, resolves in the background; ub_fd tells us when it is done.
  if (int err = ub_ctx_async(ctx.get(), 1)) return fail("libunbound async", err);
  if (auto anchors = CountTrustAnchors(options.trust_anchor_file); !anchors) {
    return tl::unexpected(anchors.error());
  }
  if (int err = ub_ctx_add_ta_file(ctx.get(), options.trust_anchor_file.c_str())) {
    return fail("trust anchor file " + options.trust_anchor_file.string(), err);
  }
  if (!options.root_hints.empty()) {
    if (int err = ub_ctx_set_option(ctx.get(), "root-hints:", options.root_hints.c_str())) {
      return fail("root hints " + options.root_hints.string(), err);
    }
  }
  for (const auto& f : options.forwarders) {
    if (int err = ub_ctx_set_fwd(ctx.get(), f.c_str())) return fail("forwarder " + f, err);
  }
  if (!options.forwarders.empty() || !options.root_hints.empty()) {
    // An operator who names a resolver on loopback (or a test's local DNS world) means it.
    ub_ctx_set_option(ctx.get(), "do-not-query-localhost:", "no");
  }
  // With a trust anchor set, libunbound's validator asks for DNSSEC data (through forwarders
  // too) and refuses unsigned answers below a secure delegation.
  auto impl = std::make_shared<Impl>(io, ctx.release(), options.timeout);
  return std::unique_ptr<Resolver>(new Resolver(std::move(impl)));
}

asio::awaitable<MxAnswer> Resolver::LookupMx(const std::string& domain) {
  auto raw = co_await impl_->Query(domain, kTypeMx);
  MxAnswer a;
  Classify(raw, domain, a);
  if (a.rcode != Rcode::kNoError) co_return a;
  ForEachRdata(raw, [&](const unsigned char* p, size_t len) {
    size_t pos = 2;
    auto host = len < 3 ? std::nullopt : NameFromWire(p, len, pos);
    if (host) a.records.push_back(MxRecord{static_cast<std::uint16_t>(p[0] << 8 | p[1]), *host});
  });
  co_return a;
}

asio::awaitable<AddressAnswer> Resolver::LookupAddresses(const std::string& host, bool ipv6) {
  auto raw = co_await impl_->Query(host, ipv6 ? kTypeAaaa : kTypeA);
  AddressAnswer a;
  Classify(raw, host, a);
  if (a.rcode != Rcode::kNoError) co_return a;
  ForEachRdata(raw, [&](const unsigned char* p, size_t len) {
    if (len != (ipv6 ? 16u : 4u)) return;
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(ipv6 ? AF_INET6 : AF_INET, p, text, sizeof text);
    a.addresses.emplace_back(text);
  });
  co_return a;
}

asio::awaitable<Answer> Resolver::LookupAny(const std::string& name, int type) {
  auto raw = co_await impl_->Query(name, type);
  Answer a;
  Classify(raw, name, a);
  co_return a;
}

asio::awaitable<TxtAnswer> Resolver::LookupTxt(const std::string& name) {
  auto raw = co_await impl_->Query(name, kTypeTxt);
  TxtAnswer a;
  Classify(raw, name, a);
  if (a.rcode != Rcode::kNoError) co_return a;
  ForEachRdata(raw, [&](const unsigned char* p, size_t len) {
    std::string text;
    for (size_t i = 0; i < len;) {  // <length><bytes>, repeated (RFC 1035 §3.3.14)
      const size_t n = p[i];
      if (i + 1 + n > len) return;  // malformed: skip the record
      text.append(reinterpret_cast<const char*>(p + i + 1), n);
      i += 1 + n;
    }
    a.records.push_back(std::move(text));
  });
  co_return a;
}

asio::awaitable<TlsaAnswer> Resolver::LookupTlsa(const std::string& name) {
  auto raw = co_await impl_->Query(name, kTypeTlsa);
  TlsaAnswer a;
  Classify(raw, name, a);
  if (a.rcode != Rcode::kNoError) co_return a;
  ForEachRdata(raw, [&](const unsigned char* p, size_t len) {
    if (len >= 3) {
      a.records.push_back(TlsaRecord{p[0], p[1], p[2], std::vector<std::uint8_t>(p + 3, p + len)});
    }
  });
  co_return a;
}

}  // namespace danerelay::dns
