#pragma once
// Reads whole SMTP replies from a Connection (relay/smtp/smtp_reply.hpp parses them), with the
// one timeout helper behind every read. Shared by the SMTP client and the sender probe.
#include <asio/awaitable.hpp>

#include <chrono>
#include <string>

#include <tl/expected.hpp>

#include "relay/io/connection.hpp"
#include "relay/smtp/smtp_reply.hpp"

namespace danerelay::relay {

class ReplyReader {
 public:
  explicit ReplyReader(Connection& conn) : conn_(conn) {}
  asio::awaitable<tl::expected<Reply, std::string>> Read(std::chrono::seconds timeout) {
    for (;;) {
      if (auto r = parser_.Next()) co_return std::move(*r);
      auto [ec, n] = co_await conn_.ReadSome(buf_, sizeof buf_, timeout);
      if (ec) co_return tl::unexpected(ec == asio::error::eof ? "lost connection" : ec.message());
      parser_.Feed(std::string_view(buf_, n));
    }
  }
  // RFC 3207 §4.2 the other way round: nothing the server sent before TLS counts after it.
  void Reset() { parser_ = ReplyParser(); }

 private:
  Connection& conn_;
  ReplyParser parser_;
  char buf_[8192];
};

}  // namespace danerelay::relay
