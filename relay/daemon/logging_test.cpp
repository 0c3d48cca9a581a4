#include "relay/daemon/logging.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <spdlog/spdlog.h>
#include <algorithm>

namespace danerelay::relay {
namespace {

TEST(LogSafeTest, PrintableAsciiIsKept) {
  EXPECT_EQ(LogSafe("mx1.example.com"), "mx1.example.com");
  EXPECT_EQ(LogSafe("mailto:tlsrpt@example.com?subject=x y"),
            "mailto:tlsrpt@example.com?subject=x y");
  EXPECT_EQ(LogSafe(""), "");
}

TEST(LogSafeTest, ControlCharactersCannotEndOrForgeALine) {
  // An MX name from DNS carrying CR LF and a forged Postfix-like line.
  const std::string mx = "mx.example\r\nJan  1 00:00:00 host postfix/smtp[1]: status=sent";
  const std::string safe = LogSafe(mx);
  EXPECT_EQ(safe, "mx.example\\x0d\\x0aJan  1 00:00:00 host postfix/smtp[1]: status=sent");
  EXPECT_EQ(safe.find_first_of("\r\n"), std::string::npos);
  EXPECT_EQ(LogSafe(std::string("a\0b\tc\x1b[2J\x7f", 10)), "a\\x00b\\x09c\\x1b[2J\\x7f");
}

TEST(LogSafeTest, NonAsciiAndBackslashAreEscaped) {
  EXPECT_EQ(LogSafe("caf\xc3\xa9.example"), "caf\\xc3\\xa9.example");
  // A backslash is doubled, so "\x0d" in the output always means an escaped byte.
  EXPECT_EQ(LogSafe("a\\x0d"), "a\\\\x0d");
}

TEST(LogSafeTest, LengthIsBounded) {
  const std::string rua(5000, 'a');
  const std::string safe = LogSafe(rua);
  EXPECT_EQ(safe, std::string(256, 'a') + "...");
  EXPECT_EQ(LogSafe("abcdef", 4), "abcd...");
  EXPECT_EQ(LogSafe("abcd", 4), "abcd");
  // An escape is never cut in half.
  EXPECT_EQ(LogSafe("ab\n", 4), "ab...");
}

TEST(LogLineTest, ControlCharactersInAMessageAreEscapedByTheLogger) {
  LogOptions options;
  options.syslog = false;
  SetUpLogging("danerelay/master", options);
  testing::internal::CaptureStderr();
  spdlog::info("connect to {}: refused", "mx.example\r\nforged line\x1b[2J");
  spdlog::warn("caf\xc3\xa9 stays UTF-8");
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_NE(out.find(" danerelay/master["), std::string::npos) << out;
  EXPECT_NE(out.find("]: connect to mx.example\\x0d\\x0aforged line\\x1b[2J: refused\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("]: warning: caf\xc3\xa9 stays UTF-8\n"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2) << out;
}

// pflogsumm and fail2ban read "TIME HOST PROGRAM[PID]: TEXT" with an RFC 3339 time; the time
// says its zone (UTC), and each service has its Postfix program's tag.
TEST(LogLineTest, LinesHaveAZonedTimeAHostAndTheTagOfTheirService) {
  LogOptions options;
  SetUpLogging("danerelay/master", options);
  testing::internal::CaptureStderr();
  Log(Service::kSmtpd).warn("unknown[192.0.2.1]: SASL PLAIN authentication failed: x");
  Log(Service::kSmtp).info("ID: to=<a@b>, status=sent (250 ok)");
  const std::string out = testing::internal::GetCapturedStderr();
  // POSIX extended regular expressions (gmock's on Linux): std::regex makes GCC 12 warn
  // (maybe-uninitialized, an error) in the sanitizer build.
  const std::string time =
      "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z [^ ]+ ";
  EXPECT_THAT(out,
              testing::MatchesRegex(
                  time +
                  "danerelay/smtpd\\[[0-9]+\\]: warning: unknown\\[192\\.0\\.2\\.1\\]: SASL PLAIN "
                  "authentication failed: x\n" +
                  time + "danerelay/smtp\\[[0-9]+\\]: ID: to=<a@b>, status=sent \\(250 ok\\)\n"));
}

}  // namespace
}  // namespace danerelay::relay
