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

// RFC 6376 §3.6.1: a record whose h= leaves out sha256, or whose s= leaves out email, makes
// verifiers ignore the key: the check says so instead of "matches".
TEST(DkimRecordTest, HashAndServiceTagsMustAllowWhatIsSigned) {
  Key key;
  key.algorithm = Algorithm::kEd25519Sha256;
  key.public_b64 = "ABCD";
  const auto problem = [&](const std::string& record) { return KeyRecordProblem(key, {record}); };
  EXPECT_EQ(problem("v=DKIM1; k=ed25519; p=ABCD"), "");
  EXPECT_EQ(problem("v=DKIM1; k=ed25519; h=sha1 : sha256; s=email; p=ABCD"), "");
  EXPECT_NE(problem("v=DKIM1; k=ed25519; h=sha1; p=ABCD").find("h=sha1"), std::string::npos);
  EXPECT_NE(problem("v=DKIM1; k=ed25519; s=tlsrpt; p=ABCD").find("s=tlsrpt"), std::string::npos);
  EXPECT_EQ(problem("v=DKIM1; k=ed25519; p=ABCE"), "the record holds another key");
}

TEST(DkimRecordTest, ZoneLineSplitsLongTextIntoStringsOf255) {
  const std::string text(300, 'a');
  const std::string line = ZoneLine("s1", "example.org", text);
  EXPECT_EQ(line, "s1._domainkey.example.org. IN TXT ( \"" + std::string(255, 'a') + "\" \"" +
                      std::string(45, 'a') + "\" )");
}

}  // namespace
}  // namespace danerelay::relay::dkim
