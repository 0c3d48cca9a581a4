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

}  // namespace
}  // namespace danerelay::relay
