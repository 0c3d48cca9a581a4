#include "relay/inbound/sender_probe.hpp"

#include <asio/ip/tcp.hpp>
#include <asio/this_coro.hpp>

#include "relay/io/reply_reader.hpp"

namespace danerelay::relay {

asio::awaitable<ProbeResult> ProbeSender(const std::string& ip, std::uint16_t port,
                                         const std::string& helo, const std::string& address,
                                         std::chrono::seconds timeout) {
  std::error_code ec;
  const auto target = asio::ip::make_address(ip, ec);
  if (ec) co_return ProbeResult{ProbeResult::kUnknown, "not an address: " + ip};
  Connection conn(asio::ip::tcp::socket(co_await asio::this_coro::executor));
  conn.deadline.Arm(timeout);
  std::tie(ec) =
      co_await conn.socket.async_connect(asio::ip::tcp::endpoint(target, port), kUseTuple);
  conn.deadline.Disarm();
  if (conn.deadline.expired()) ec = asio::error::timed_out;
  if (ec) co_return ProbeResult{ProbeResult::kUnknown, "connect to " + ip + ": " + ec.message()};
  ReplyReader reader(conn);
  // Each step: send (unless empty), read the reply, and stop unless it is positive.
  std::string commands[] = {"", "EHLO " + helo + "\r\n", "MAIL FROM:<>\r\n",
                            "RCPT TO:<" + address + ">\r\n"};
  ProbeResult result;
  for (size_t i = 0; i < std::size(commands); ++i) {
    if (!commands[i].empty() && (ec = co_await conn.Write(commands[i], timeout))) {
      result = {ProbeResult::kUnknown, "lost connection: " + ec.message()};
      break;
    }
    auto reply = co_await reader.Read(timeout);
    if (!reply) {
      result = {ProbeResult::kUnknown, reply.error()};
      break;
    }
    const bool rcpt = i + 1 == std::size(commands);
    if (rcpt || !reply->Positive()) {
      // Only the RCPT reply speaks about the address; a refusal earlier says nothing of it.
      result.verdict = !rcpt || reply->Transient() ? ProbeResult::kUnknown
                       : reply->Positive()         ? ProbeResult::kValid
                                                   : ProbeResult::kInvalid;
      result.reply = reply->Text();
      break;
    }
  }
  const std::string quit = "QUIT\r\n";
  co_await conn.Write(quit, std::chrono::seconds(5));
  co_await conn.Close();
  co_return result;
}

}  // namespace danerelay::relay
