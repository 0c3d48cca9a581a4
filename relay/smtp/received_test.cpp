#include "relay/smtp/received.hpp"

#include <gtest/gtest.h>

namespace danerelay::relay {
namespace {

TEST(ReceivedTest, PostfixLikeLayout) {
  ReceivedInfo info;
  info.helo = "client.example.org";
  info.client_address = "2001:db8::1";
  info.hostname = "relay.example.net";
  info.protocol = "ESMTPS";
  info.queue_id = "0ABC";
  info.tls = "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)";
  info.for_recipient = "bob@example.com";
  info.time = queue::TimePoint(std::chrono::seconds(1795337301));  // 2026-11-22 08:48:21 UTC
  EXPECT_EQ(FormatReceived(info),
            "Received: from client.example.org (unknown [IPv6:2001:db8::1])\r\n"
            "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n"
            "\tby relay.example.net (danerelay) with ESMTPS id 0ABC\r\n"
            "\tfor <bob@example.com>; Sun, 22 Nov 2026 08:48:21 +0000\r\n");
}

TEST(ReceivedTest, HiddenClientKeepsPlaceProtocolAndTlsButNoNameOrAddress) {
  ReceivedInfo info;
  info.helo = "pc17.corp.internal";
  info.client_address = "10.1.2.3";
  info.hostname = "relay.example.net";
  info.protocol = "ESMTPSA";
  info.queue_id = "0ABC";
  info.tls = "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)";
  info.time = queue::TimePoint(std::chrono::seconds(1795337301));
  info.hide_client = true;
  const std::string r = FormatReceived(info);
  EXPECT_EQ(r,
            "Received: from client.invalid\r\n"
            "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n"
            "\tby relay.example.net (danerelay) with ESMTPSA id 0ABC; Sun, 22 Nov 2026 08:48:21 "
            "+0000\r\n");
  EXPECT_EQ(r.find("10.1.2.3"), std::string::npos);
  EXPECT_EQ(r.find("corp.internal"), std::string::npos);
}

TEST(ReceivedTest, RemoveHeaderFieldsTakesFoldedFieldsInAnyCaseAndNeverTheBody) {
  std::string m =
      "Received: from a\r\n\tby b; date\r\nx-originating-ip: [10.1.2.3]\r\n"
      "User-Agent: Mail/1.0\r\n (folded)\r\nSubject: hi\r\n\r\nUser-Agent: in the body\r\n";
  RemoveHeaderFields(m, {"X-Originating-IP", "user-agent"});
  EXPECT_EQ(m,
            "Received: from a\r\n\tby b; date\r\nSubject: hi\r\n\r\nUser-Agent: in the body\r\n");
  std::string unchanged = "Subject: x\r\n\r\nbody\r\n";
  RemoveHeaderFields(unchanged, {"User-Agent"});
  EXPECT_EQ(unchanged, "Subject: x\r\n\r\nbody\r\n");
}

}  // namespace
}  // namespace danerelay::relay
