#include "relay/dkim/headers.hpp"

#include <gtest/gtest.h>

namespace danerelay::relay::dkim {
namespace {

tl::expected<std::string, std::string> From(std::string_view content) {
  return FromDomain(SplitHeader(content, nullptr));
}

TEST(DkimHeaders, SplitsFoldedFieldsAndFindsTheBody) {
  const std::string m = "From: a@b.example\r\nSubject: one\r\n two\r\n\r\nbody\r\n";
  std::size_t body = 0;
  const auto fields = SplitHeader(m, &body);
  ASSERT_EQ(fields.size(), 2u);
  EXPECT_EQ(fields[1].name, "Subject");
  EXPECT_EQ(fields[1].text, "Subject: one\r\n two");
  EXPECT_EQ(m.substr(body), "body\r\n");
}

TEST(DkimHeaders, FromDomainOfTheCommonForms) {
  EXPECT_EQ(*From("From: a@Example.ORG\r\n\r\n"), "example.org");
  EXPECT_EQ(*From("from: \"Doe, J. <x@evil.example>\" <j@example.org>\r\n\r\n"), "example.org");
  EXPECT_EQ(*From("From: j@example.org (Doe @ evil.example)\r\n\r\n"), "example.org");
  EXPECT_EQ(*From("From : Name\r\n <j@sub.example.org.>\r\n\r\n"), "sub.example.org");
  // A U-label domain (SMTPUTF8 header) is signed as its A-label form (RFC 8616 §4).
  EXPECT_EQ(*From("From: j@b\xC3\xBC\x63her.example\r\n\r\n"), "xn--bcher-kva.example");
}

TEST(DkimHeaders, FromAddressKeepsTheLocalPart) {
  const auto a = FromAddress(SplitHeader("From: \"J\" <Jo.Doe@Example.ORG>\r\n\r\n", nullptr));
  ASSERT_TRUE(a) << a.error();
  EXPECT_EQ(*a, "Jo.Doe@example.org");
}

TEST(DkimHeaders, FromDomainRefusesWhatItCannotAlign) {
  EXPECT_FALSE(From("Subject: x\r\n\r\n"));
  EXPECT_FALSE(From("From: a@a.example\r\nFrom: b@b.example\r\n\r\n"));
  EXPECT_FALSE(From("From: a@a.example, b@b.example\r\n\r\n"));
  EXPECT_FALSE(From("From: undisclosed\r\n\r\n"));
  EXPECT_FALSE(From("From: a@ex_ample.org\r\n\r\n"));  // not a host name: no d= for it
  EXPECT_FALSE(From("From: a@a..example\r\n\r\n"));
  EXPECT_FALSE(From("From: a@-x\xFF.example\r\n\r\n"));
  // The body is not the header: a From line after the empty line is not a From field.
  EXPECT_FALSE(From("Subject: x\r\n\r\nFrom: a@a.example\r\n"));
}

TEST(DkimHeaders, SignedDomainsReadsDTags) {
  const std::string m =
      "DKIM-Signature: v=1; a=rsa-sha256;\r\n\td=Example.org; s=x; b=abc\r\n"
      "dkim-signature: v=1; d = Third.example ;\r\n s=y\r\n\r\n";  // RFC 6376 §3.2: FWS
  const auto d = SignedDomains(SplitHeader(m, nullptr));
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0], "example.org");
  EXPECT_EQ(d[1], "third.example");
}

}  // namespace
}  // namespace danerelay::relay::dkim
