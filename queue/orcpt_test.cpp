#include "queue/orcpt.hpp"

#include <gtest/gtest.h>

namespace danerelay::queue {
namespace {

TEST(OrcptTest, DecodesEmbeddedUnicode) {
  // RFC 6533 §3 EmbeddedUnicodeChar: "\x{" HEXPOINT "}".
  EXPECT_EQ(DecodeEmbeddedUnicode("b\\x{FC}cher"),
            "b\xC3\xBC"
            "cher");
  EXPECT_EQ(DecodeEmbeddedUnicode("\\x{1F4E7}\\x{20AC}\\x{5C}"), "\xF0\x9F\x93\xA7\xE2\x82\xAC\\");
  EXPECT_EQ(DecodeEmbeddedUnicode("plain@example.net"), "plain@example.net");
  EXPECT_FALSE(DecodeEmbeddedUnicode("a\\b"));
  EXPECT_FALSE(DecodeEmbeddedUnicode("a\\x{FC"));
  EXPECT_FALSE(DecodeEmbeddedUnicode("a\\x{}"));
  EXPECT_FALSE(DecodeEmbeddedUnicode("a\\x{D800}"));    // a surrogate
  EXPECT_FALSE(DecodeEmbeddedUnicode("a\\x{110000}"));  // beyond Unicode
  EXPECT_FALSE(DecodeEmbeddedUnicode("a\\x{0}"));
  EXPECT_FALSE(DecodeEmbeddedUnicode("a\\x{GG}"));
}

TEST(OrcptTest, ParameterForTheNextHop) {
  // RFC 3461 §4.2: rfc822 as xtext.
  EXPECT_EQ(OrcptParameter("rfc822;bob+x@example.net", false), "rfc822;bob+2Bx@example.net");
  // RFC 6533 §3: utf-8-addr-unitext to a next hop with SMTPUTF8, utf-8-addr-xtext otherwise;
  // "\", "+", "=" and SP are escaped in both.
  EXPECT_EQ(OrcptParameter("utf-8;j\xC3\xB6rg+a@b\xC3\xBC"
                           "cher.example",
                           true),
            "utf-8;j\xC3\xB6rg\\x{2B}a@b\xC3\xBC"
            "cher.example");
  EXPECT_EQ(OrcptParameter("utf-8;j\xC3\xB6rg+a@b\xC3\xBC"
                           "cher.example",
                           false),
            "utf-8;j\\x{F6}rg\\x{2B}a@b\\x{FC}cher.example");
  EXPECT_EQ(OrcptParameter("UTF-8;\xF0\x9F\x93\xA7@example.net", false),
            "UTF-8;\\x{1F4E7}@example.net");
}

TEST(OrcptTest, SevenBitField) {
  EXPECT_EQ(OrcptField("rfc822;bob@example.net"), "rfc822; bob@example.net");
  EXPECT_EQ(OrcptField("utf-8;user@b\xC3\xBC"
                       "cher.example"),
            "utf-8; user@b\\x{FC}cher.example");
}

}  // namespace
}  // namespace danerelay::queue
