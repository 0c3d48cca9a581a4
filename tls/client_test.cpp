#include "tls/client.hpp"

#include <gtest/gtest.h>

namespace danerelay::tls {
namespace {

dns::TlsaRecord R(int usage, int selector, int mtype, size_t len) {
  return dns::TlsaRecord{static_cast<std::uint8_t>(usage), static_cast<std::uint8_t>(selector),
                         static_cast<std::uint8_t>(mtype), std::vector<std::uint8_t>(len, 1)};
}

TEST(TlsaUsabilityTest, OnlyDaneUsagesWithKnownSelectorsAndDigests) {
  EXPECT_TRUE(UsableForSmtp(R(3, 1, 1, 32)));
  EXPECT_TRUE(UsableForSmtp(R(3, 0, 2, 64)));
  EXPECT_TRUE(UsableForSmtp(R(2, 0, 1, 32)));
  EXPECT_TRUE(UsableForSmtp(R(2, 1, 0, 300)));  // full SPKI
  EXPECT_FALSE(UsableForSmtp(R(0, 0, 1, 32)));  // PKIX-TA: RFC 7672 §3.1.3
  EXPECT_FALSE(UsableForSmtp(R(1, 1, 1, 32)));  // PKIX-EE
  EXPECT_FALSE(UsableForSmtp(R(4, 1, 1, 32)));  // unknown usage
  EXPECT_FALSE(UsableForSmtp(R(3, 2, 1, 32)));  // unknown selector
  EXPECT_FALSE(UsableForSmtp(R(3, 1, 3, 32)));  // unknown matching type
  EXPECT_FALSE(UsableForSmtp(R(3, 1, 1, 31)));  // SHA-256 of the wrong length
  EXPECT_FALSE(UsableForSmtp(R(3, 1, 2, 32)));  // SHA-512 of the wrong length
  EXPECT_FALSE(UsableForSmtp(R(3, 1, 0, 0)));   // empty full value
  auto usable = UsableForSmtp({R(1, 1, 1, 32), R(3, 1, 1, 32), R(0, 0, 1, 32)});
  ASSERT_EQ(usable.size(), 1u);
  EXPECT_EQ(usable[0].usage, 3);
}

TEST(TlsaUsabilityTest, ZoneFileForm) {
  EXPECT_EQ((dns::TlsaRecord{3, 1, 1, {0xab, 0x01}}).ToString(), "3 1 1 AB01");
}

}  // namespace
}  // namespace danerelay::tls
