#include "relay/delivery/seven_bit.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "relay/delivery/mime_leaves_test_util.hpp"

namespace danerelay::relay {
namespace {

// What RFC 5321 §2.3.8 and §4.5.3.1.6 ask of a 7-bit body: ASCII only, CRLF line ends, no line
// longer than 998 octets.
void ExpectSevenBitCrlf(const std::string& m) {
  size_t line = 0;
  for (size_t i = 0; i < m.size(); ++i) {
    const auto c = static_cast<unsigned char>(m[i]);
    ASSERT_LT(c, 0x80) << "at " << i;
    if (c == '\r') {
      ASSERT_TRUE(i + 1 < m.size() && m[i + 1] == '\n') << "bare CR at " << i;
    } else if (c == '\n') {
      ASSERT_TRUE(i > 0 && m[i - 1] == '\r') << "bare LF at " << i;
      line = 0;
      continue;
    }
    ASSERT_LE(++line, 999u) << "long line at " << i;  // 998 octets plus its CR
  }
}

std::string Convert(const std::string& m) {
  auto r = ToSevenBit(m);
  EXPECT_TRUE(r.has_value()) << r.error();
  if (!r || !*r) {
    ADD_FAILURE() << "no conversion";
    return {};
  }
  ExpectSevenBitCrlf(**r);
  return std::move(**r);
}

const std::string kUtf8Text =
    "Gr\xc3\xbc\xc3\x9f"
    "e aus K\xc3\xb6ln, and a long enough line of plain ASCII text.\r\n"
    "A second line without anything special in it at all.\r\n"
    ".A line with a leading dot, and one with trailing space \r\n";

TEST(SevenBit, Utf8TextBecomesQuotedPrintableAndDecodesToTheSameBytes) {
  const std::string header =
      "Received: from client.example by relay.test; Tue, 1 Apr 2025 10:00:00 +0000\r\n"
      "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s1;\r\n"
      "\tbh=abc; b=def\r\n"
      "From: <alice@example.org>\r\n"
      "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n";
  const std::string m = header + "Content-Transfer-Encoding: 8bit\r\n\r\n" + kUtf8Text;
  const std::string out = Convert(m);
  // Every other header field byte for byte, in its place; only the encoding label changes.
  EXPECT_EQ(out.substr(0, header.size()), header);
  EXPECT_EQ(out.substr(header.size(), 47), "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
  EXPECT_NE(out.find("Gr=C3=BC=C3=9Fe aus K=C3=B6ln"), std::string::npos) << out;
  EXPECT_EQ(Leaves(out), std::vector<std::string>{kUtf8Text});
}

TEST(SevenBit, MultipartAlternativeKeepsTheSevenBitPartUnchanged) {
  const std::string ascii_part =
      "--XYZ\r\n"
      "Content-Type: text/html; charset=us-ascii\r\n"
      "Content-Transfer-Encoding: 7bit\r\n"
      "\r\n"
      "<p>Gr&uuml;&szlig;e</p>\r\n";
  const std::string m =
      "From: <alice@example.org>\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: multipart/alternative; boundary=\"XYZ\"\r\n"
      "\r\n"
      "This is a multi-part message in MIME format.\r\n"
      "--XYZ\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "Content-Transfer-Encoding: 8bit\r\n"
      "\r\n" +
      kUtf8Text + "\r\n" + ascii_part + "--XYZ--\r\n";
  const std::string out = Convert(m);
  EXPECT_NE(out.find(ascii_part), std::string::npos) << out;
  EXPECT_TRUE(out.starts_with(m.substr(0, m.find("--XYZ\r\n") + 7))) << out;
  EXPECT_NE(out.find("Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC"),
            std::string::npos)
      << out;
  EXPECT_TRUE(out.ends_with("\r\n--XYZ--\r\n")) << out;
  // The CRLF before a boundary belongs to the boundary (RFC 2046 §5.1.1).
  EXPECT_EQ(Leaves(out), (std::vector<std::string>{kUtf8Text, "<p>Gr&uuml;&szlig;e</p>"}));
}

TEST(SevenBit, EightBitOrBinaryAttachmentBecomesBase64) {
  std::string blob;
  for (int i = 0; i < 3000; ++i) blob += static_cast<char>((i * 7) % 256);
  for (const std::string cte : {"8bit", "binary"}) {
    const std::string m =
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=b1\r\n"
        "\r\n"
        "--b1\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        "See the attachment.\r\n"
        "--b1\r\n"
        "Content-Type: application/octet-stream; name=blob.bin\r\n"
        "Content-Disposition: attachment; filename=blob.bin\r\n"
        "Content-Transfer-Encoding: " +
        cte + "\r\n\r\n" + blob + "\r\n--b1--\r\n";
    const std::string out = Convert(m);
    EXPECT_NE(out.find("filename=blob.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"),
              std::string::npos)
        << cte;
    EXPECT_EQ(Leaves(out), (std::vector<std::string>{"See the attachment.", blob})) << cte;
  }
}

TEST(SevenBit, MessageWithoutMimeHeadersBecomesTextOfUnknownCharset) {
  const std::string header = "From: <alice@example.org>\r\nSubject: old style\r\n";
  const std::string m = header + "\r\n" + kUtf8Text;
  const std::string out = Convert(m);
  // RFC 1428: "unknown-8bit" says what is known, that the charset is not.
  EXPECT_EQ(out.substr(0, out.find("\r\n\r\n") + 4),
            header +
                "MIME-Version: 1.0\r\n"
                "Content-Type: text/plain; charset=unknown-8bit\r\n"
                "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
  EXPECT_EQ(Leaves(out), std::vector<std::string>{kUtf8Text});
}

TEST(SevenBit, MostlyEightBitTextBecomesBase64) {
  // KOI8-R: nearly every octet is 8-bit, quoted-printable would triple it.
  std::string koi8;
  for (int i = 0; i < 40; ++i) koi8 += "\xf0\xd2\xc9\xd7\xc5\xd4 ";
  koi8 += "\r\n";
  const std::string m =
      "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=koi8-r\r\n\r\n" + koi8;
  const std::string out = Convert(m);
  EXPECT_NE(out.find("Content-Transfer-Encoding: base64\r\n\r\n"), std::string::npos) << out;
  EXPECT_EQ(Leaves(out), std::vector<std::string>{koi8});
}

TEST(SevenBit, LongLinesAreBrokenUnderTheLimit) {
  std::string line;
  while (line.size() < 5000) line += "caf\xc3\xa9 au lait, ";
  const std::string body = line + "\r\n" + line + "\r\n";
  const std::string m =
      "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
      "Content-Transfer-Encoding: 8bit\r\n\r\n" +
      body;
  const std::string out = Convert(m);  // checks every line is at most 998 octets
  EXPECT_EQ(Leaves(out), std::vector<std::string>{body});
}

TEST(SevenBit, MessageRfc822PartIsConvertedInside) {
  const std::string m =
      "MIME-Version: 1.0\r\n"
      "Content-Type: multipart/mixed; boundary=outer\r\n"
      "\r\n"
      "--outer\r\n"
      "Content-Type: message/rfc822\r\n"
      "Content-Transfer-Encoding: 8bit\r\n"
      "\r\n"
      "Subject: forwarded\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "\r\n" +
      kUtf8Text + "--outer--\r\n";
  const std::string out = Convert(m);
  // RFC 2046 §5.2.1: the encapsulating part is labelled 7bit once its content is.
  EXPECT_NE(out.find("message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n\r\nSubject: "
                     "forwarded\r\n"),
            std::string::npos)
      << out;
  EXPECT_EQ(Leaves(out), std::vector<std::string>{kUtf8Text.substr(0, kUtf8Text.size() - 2)});
}

TEST(SevenBit, AlreadySevenBitIsLeftAlone) {
  const auto r = ToSevenBit(
      "Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
      "Content-Transfer-Encoding: 8bit\r\n\r\nonly ASCII here\r\n");
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_FALSE(r->has_value());
  EXPECT_FALSE(HasEightBit("only ASCII\r\n"));
  EXPECT_TRUE(HasEightBit("caf\xc3\xa9"));
}

TEST(SevenBit, WhatCannotBeConvertedIsAnError) {
  const std::string body =
      "\r\nGr\xc3\xbc\xc3\x9f"
      "e\r\n";
  struct Case {
    std::string message, why;
  } cases[] = {
      {"Subject: Gr\xc3\xbc\xc3\x9f"
       "e\r\n" +
           body,
       "message header"},
      // A part's own header, and the header of an encapsulated message.
      {"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
       "Content-Description: Gr\xc3\xbc\xc3\x9f"
       "e\r\n\r\ntext\r\n--b--\r\n",
       "MIME part header"},
      {"MIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\nSubject: Gr\xc3\xbc\r\n\r\n"
       "text\r\n",
       "MIME part header"},
      // Declared base64, yet 8-bit: there is nothing sound to re-encode.
      {"MIME-Version: 1.0\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n" +
           body,
       "declared base64"},
      // RFC 1847 §2.1: re-encoding would break the signature.
      // Two labels (readers differ on which counts), and a label nobody here knows.
      {"MIME-Version: 1.0\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n"
       "Content-Transfer-Encoding: 8bit\r\n" +
           body,
       "two Content-Transfer-Encoding fields"},
      {"MIME-Version: 1.0\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-custom\r\n" +
           body,
       "unknown transfer encoding"},
      {"MIME-Version: 1.0\r\nContent-Type: multipart/signed; boundary=s; "
       "protocol=\"application/pgp-signature\"; micalg=pgp-sha256\r\n\r\n--s\r\n"
       "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n" +
           body + "--s\r\nContent-Type: application/pgp-signature\r\n\r\nSIG\r\n--s--\r\n",
       "signature"},
  };
  // Too many parts to parse on the delivery thread: refused before parsing.
  std::string many = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n";
  for (int i = 0; i < 10001; ++i) many += "--a\r\n\r\n\xc3\xbc\r\n";
  many += "--a--\r\n";
  cases[0] = {many, "more than 10000 MIME parts"};
  for (const auto& c : cases) {
    const auto r = ToSevenBit(c.message);
    ASSERT_FALSE(r.has_value()) << c.message;
    EXPECT_NE(r.error().find(c.why), std::string::npos) << r.error();
  }
}

// A soft line break of quoted-printable can start a line with "--" and the enclosing boundary,
// which would end the part there (RFC 2046 §5.1.1): such a part goes as base64.
TEST(SevenBit, QuotedPrintableThatWouldMakeABoundaryLineBecomesBase64) {
  const std::string text = "caf\xc3\xa9 " + std::string(65, 'a') + "--XYZ\r\n";
  const std::string m =
      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XYZ\"\r\n\r\n"
      "--XYZ\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
      "\r\n" +
      text + "\r\n--XYZ\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--XYZ--\r\n";
  const std::string out = Convert(m);
  EXPECT_NE(out.find("Content-Transfer-Encoding: base64\r\n"), std::string::npos) << out;
  EXPECT_EQ(Leaves(out), (std::vector<std::string>{text, "second"}));
}

// GMime gives a field's offset at the start of malformed lines it skipped before it when they
// open the part's header (found by fuzz_seven_bit): the field that is replaced must be the field
// itself, and the junk stays.
TEST(SevenBit, MalformedLinesBeforeTheEncodingFieldAreKeptAndTheFieldReplaced) {
  for (const std::string& junk :
       {std::string("no colon on this line\r\n"), std::string("X-Na\0me: value\r\n", 16)}) {
    const std::string m =
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XYZ\"\r\n\r\n"
        "--XYZ\r\n" +
        junk + "Content-Transfer-Encoding: 8bit\r\n\r\n" + kUtf8Text + "\r\n--XYZ--\r\n";
    const auto r = ToSevenBit(m);
    ASSERT_TRUE(r.has_value()) << r.error();
    ASSERT_TRUE(r->has_value());
    const std::string& out = **r;
    EXPECT_NE(out.find(junk + "Content-Transfer-Encoding: quoted-printable\r\n\r\n"),
              std::string::npos)
        << out;
    EXPECT_EQ(out.find("8bit"), std::string::npos) << out;
    EXPECT_EQ(Leaves(out), (std::vector<std::string>{kUtf8Text}));
  }
}

}  // namespace
}  // namespace danerelay::relay
