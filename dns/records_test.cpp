#include "dns/records.hpp"

#include <gtest/gtest.h>

namespace danerelay::dns {
namespace {

std::optional<std::string> Name(const std::string& wire) {
  std::size_t pos = 0;
  auto out = NameFromWire(reinterpret_cast<const unsigned char*>(wire.data()), wire.size(), pos);
  if (out) {
    EXPECT_EQ(pos, wire.size());
  }
  return out;
}

TEST(NameFromWireTest, PlainNamesAndTheRoot) {
  EXPECT_EQ(Name(std::string("\x02mx\x07"
                             "example\x03net\x00",
                             16)),
            "mx.example.net");
  EXPECT_EQ(Name(std::string("\x00", 1)), "");
}

TEST(NameFromWireTest, ControlBytesDotsAndBackslashesAreEscaped) {
  // A label "a\r\nb" and a label "x.y\": nothing raw may reach a reply, a header or a log line.
  EXPECT_EQ(Name(std::string("\x04"
                             "a\r\nb\x04x.y\\\x00",
                             11)),
            "a\\013\\010b.x\\.y\\\\");
  EXPECT_EQ(Name(std::string("\x03"
                             "a b\x02\xc3\xa9\x00",
                             8)),
            "a\\032b.\\195\\169");
}

TEST(NameFromWireTest, MalformedNamesAreRefused) {
  EXPECT_EQ(Name(std::string("\x05"
                             "abc",
                             4)),
            std::nullopt);                                  // label beyond the data
  EXPECT_EQ(Name(std::string("\x40", 1)), std::nullopt);    // label longer than 63
  EXPECT_EQ(Name(std::string("\x02mx", 3)), std::nullopt);  // no root label
}

}  // namespace
}  // namespace danerelay::dns
