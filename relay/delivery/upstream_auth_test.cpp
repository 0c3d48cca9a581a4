#include "relay/delivery/upstream_auth.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace danerelay::relay {
namespace {

tls::Verdict Of(tls::Verdict::Kind kind) {
  tls::Verdict v;
  v.kind = kind;
  return v;
}

TEST(UpstreamAuth, CredentialsGoOnlyOverAuthenticatedTls) {
  using K = tls::Verdict::Kind;
  EXPECT_TRUE(MaySendCredentials(Of(K::kVerified), false, false));    // DANE, or the pins
  EXPECT_TRUE(MaySendCredentials(Of(K::kTrusted), true, false));      // "verify"
  EXPECT_FALSE(MaySendCredentials(Of(K::kTrusted), false, false));    // trusted, not required
  EXPECT_FALSE(MaySendCredentials(Of(K::kUntrusted), false, false));  // "encrypt"
  EXPECT_FALSE(MaySendCredentials(std::nullopt, false, false));       // plain text
  EXPECT_TRUE(MaySendCredentials(std::nullopt, false, true));         // the operator said so
}

TEST(UpstreamAuth, PlainIsPreferredThenLogin) {
  EXPECT_EQ(ChooseMechanism({"LOGIN", "PLAIN"}), AuthMechanism::kPlain);
  EXPECT_EQ(ChooseMechanism({"CRAM-MD5", "LOGIN"}), AuthMechanism::kLogin);
  EXPECT_FALSE(ChooseMechanism({"XOAUTH2"}));
  // RFC 4616 §2: [authzid] NUL authcid NUL passwd.
  EXPECT_EQ(PlainInitialResponse("user", "pass"), "AHVzZXIAcGFzcw==");
}

TEST(UpstreamAuth, ThePasswordIsTheFirstLine) {
  const std::string path = ::testing::TempDir() + "/upstream_auth_password";
  std::ofstream(path) << "s3cret\r\nignored\n";
  EXPECT_EQ(ReadPassword(path).value_or(""), "s3cret");
  std::ofstream(path, std::ios::trunc) << "\n";
  EXPECT_FALSE(ReadPassword(path));
  EXPECT_FALSE(ReadPassword(path + ".missing"));
}

}  // namespace
}  // namespace danerelay::relay
