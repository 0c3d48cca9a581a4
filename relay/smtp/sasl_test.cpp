#include "relay/smtp/sasl.hpp"

#include <gtest/gtest.h>

namespace danerelay::relay {
namespace {

using S = SaslExchange::Status;

TEST(Base64Test, StrictDecoding) {
  EXPECT_EQ(DecodeBase64("AGFsaWNlAHNlY3JldA=="), std::string("\0alice\0secret", 13));
  EXPECT_EQ(DecodeBase64(""), "");
  EXPECT_EQ(DecodeBase64("YQ=="), "a");
  EXPECT_EQ(DecodeBase64("YWI="), "ab");
  EXPECT_FALSE(DecodeBase64("YQ"));        // padding required
  EXPECT_FALSE(DecodeBase64("Y Q=="));     // no whitespace
  EXPECT_FALSE(DecodeBase64("YQ==YQ=="));  // padding only at the end
  EXPECT_FALSE(DecodeBase64("Y!=="));
  EXPECT_EQ(EncodeBase64("Username:"), "VXNlcm5hbWU6");
}

TEST(SaslTest, PlainWithInitialResponse) {
  SaslExchange x;
  ASSERT_EQ(x.Start("PLAIN " + EncodeBase64(std::string("\0alice\0secret", 13))), S::kDone);
  EXPECT_EQ(x.user(), "alice");
  EXPECT_EQ(x.password(), "secret");
  EXPECT_EQ(x.mechanism(), "PLAIN");
}

TEST(SaslTest, PlainAfterAnEmptyChallenge) {
  SaslExchange x;
  ASSERT_EQ(x.Start("plain"), S::kChallenge);
  EXPECT_EQ(x.challenge(), "");
  ASSERT_EQ(x.Continue(EncodeBase64(std::string("alice\0alice\0pw", 14))), S::kDone);
  EXPECT_EQ(x.user(), "alice");
}

TEST(SaslTest, PlainRefusesAnotherIdentityAndMissingParts) {
  SaslExchange x;
  EXPECT_EQ(x.Start("PLAIN " + EncodeBase64(std::string("bob\0alice\0pw", 13))), S::kMalformed);
  EXPECT_EQ(x.Start("PLAIN " + EncodeBase64("alice")), S::kMalformed);
  EXPECT_EQ(x.Start("PLAIN ="), S::kMalformed);  // "=": an empty initial response
  EXPECT_EQ(x.Start("PLAIN not-base64"), S::kBadBase64);
}

TEST(SaslTest, LoginInTwoStepsOrWithTheUserUpFront) {
  SaslExchange x;
  ASSERT_EQ(x.Start("LOGIN"), S::kChallenge);
  EXPECT_EQ(x.challenge(), "VXNlcm5hbWU6");  // "Username:"
  ASSERT_EQ(x.Continue(EncodeBase64("alice")), S::kChallenge);
  EXPECT_EQ(x.challenge(), "UGFzc3dvcmQ6");  // "Password:"
  ASSERT_EQ(x.Continue(EncodeBase64("secret")), S::kDone);
  EXPECT_EQ(x.user(), "alice");
  EXPECT_EQ(x.password(), "secret");
  SaslExchange y;
  ASSERT_EQ(y.Start("LOGIN " + EncodeBase64("bob")), S::kChallenge);
  ASSERT_EQ(y.Continue(EncodeBase64("pw")), S::kDone);
  EXPECT_EQ(y.user(), "bob");
}

TEST(SaslTest, CancelUnknownMechanismBadBase64) {
  SaslExchange x;
  ASSERT_EQ(x.Start("LOGIN"), S::kChallenge);
  EXPECT_EQ(x.Continue("*"), S::kCancelled);
  EXPECT_EQ(x.Start("CRAM-MD5"), S::kUnknownMechanism);
  ASSERT_EQ(x.Start("LOGIN"), S::kChallenge);
  EXPECT_EQ(x.Continue("%%%%"), S::kBadBase64);
}

}  // namespace
}  // namespace danerelay::relay
