#include "dns/idn.hpp"

#include <gtest/gtest.h>

namespace danerelay::dns {
namespace {

TEST(IdnTest, AsciiNamesAreOnlyLowerCased) {
  EXPECT_EQ(ToAsciiDomain("Mail.Example.ORG").value(), "mail.example.org");
  EXPECT_EQ(ToAsciiDomain("xn--bcher-kva.example").value(), "xn--bcher-kva.example");
}

TEST(IdnTest, ULabelsBecomeALabels) {
  EXPECT_EQ(ToAsciiDomain("bücher.example").value(), "xn--bcher-kva.example");
  // UTS #46 mapping: upper case U-labels are lower-cased first.
  EXPECT_EQ(ToAsciiDomain("BÜCHER.example").value(), "xn--bcher-kva.example");
  // IDNA2008 non-transitional: ß stays ß (not "ss").
  EXPECT_EQ(ToAsciiDomain("straße.example").value(), "xn--strae-oqa.example");
  EXPECT_EQ(ToAsciiDomain("例え.テスト").value(), "xn--r8jz45g.xn--zckzah");
}

TEST(IdnTest, InvalidNamesAreRefused) {
  EXPECT_FALSE(
      ToAsciiDomain("\xcc\x81"
                    "a.example"));                   // a leading combining mark
  EXPECT_FALSE(ToAsciiDomain("-\xc3\xbc.example"));  // a leading hyphen
  EXPECT_FALSE(
      ToAsciiDomain("a\xe2\x80\x8d"
                    "b.example"));                  // ZWJ out of context (CONTEXTJ)
  EXPECT_FALSE(ToAsciiDomain("\xff\xfe.example"));  // not UTF-8
  EXPECT_FALSE(ToAsciiDomain("☃.example"));         // a symbol (DISALLOWED)
}

TEST(IdnTest, Addresses) {
  EXPECT_EQ(ToAsciiAddress("").value(), "");
  EXPECT_EQ(ToAsciiAddress("User@Example.org").value(), "User@Example.org");
  EXPECT_EQ(ToAsciiAddress("info@bücher.example").value(), "info@xn--bcher-kva.example");
  EXPECT_FALSE(ToAsciiAddress("jörg@bücher.example"));
  EXPECT_FALSE(ToAsciiAddress("jörg@example.org"));
  EXPECT_EQ(ToAsciiAddressIfPossible("info@bücher.example"), "info@xn--bcher-kva.example");
  EXPECT_EQ(ToAsciiAddressIfPossible("jörg@bücher.example"), "jörg@bücher.example");
}

}  // namespace
}  // namespace danerelay::dns
