#include "relay/dkim/record.hpp"

#include <gtest/gtest.h>

namespace danerelay::relay::dkim {
namespace {

TEST(DkimRecordTest, FindsTheKeyRecordAmongOtherTxtRecords) {
  std::string why;
  const auto k = FindKeyRecord({"v=spf1 -all", "v=DKIM1; k=ed25519; p=AB CD\t=="}, &why);
  ASSERT_TRUE(k) << why;
  EXPECT_EQ(k->key_type, "ed25519");
  EXPECT_EQ(k->public_b64, "ABCD==");
}

TEST(DkimRecordTest, RsaIsTheDefaultKeyTypeAndAnEmptyPIsARevokedKey) {
  const auto k = FindKeyRecord({"p="}, nullptr);
  ASSERT_TRUE(k);
  EXPECT_EQ(k->key_type, "rsa");
  EXPECT_EQ(k->public_b64, "");
}

TEST(DkimRecordTest, RefusesVersionNotFirstDuplicateTagsAndTwoRecords) {
  std::string why;
  EXPECT_FALSE(FindKeyRecord({"k=rsa; v=DKIM1; p=AA"}, &why));
  EXPECT_FALSE(FindKeyRecord({"v=DKIM1; p=AA; p=BB"}, &why));
  EXPECT_FALSE(FindKeyRecord({"v=DKIM1; p=AA", "v=DKIM1; p=BB"}, &why));
  EXPECT_EQ(why, "more than one key record");
  EXPECT_FALSE(FindKeyRecord({}, &why));
  EXPECT_EQ(why, "no TXT record");
}

TEST(DkimRecordTest, ZoneLineSplitsLongTextIntoStringsOf255) {
  const std::string text(300, 'a');
  const std::string line = ZoneLine("s1", "example.org", text);
  EXPECT_EQ(line, "s1._domainkey.example.org. IN TXT ( \"" + std::string(255, 'a') + "\" \"" +
                      std::string(45, 'a') + "\" )");
}

}  // namespace
}  // namespace danerelay::relay::dkim
