#include "relay/dkim/signer.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace danerelay::relay::dkim {
namespace {

namespace fs = std::filesystem;

Submission Client(bool authenticated, bool trusted, const std::string& ip) {
  Submission s;
  s.authenticated = authenticated;
  s.trusted = trusted;
  s.client_ip = ip;
  return s;
}

class DkimSigner : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dkim_signer_test." + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  DkimKeyOptions NewKey(const std::string& domain, const std::string& selector,
                        const std::string& algorithm) {
    const fs::path file = dir_ / (selector + "." + domain + ".pem");
    std::ofstream(file) << *GenerateKeyPem(algorithm);
    fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
    return {domain, selector, file};
  }

  std::shared_ptr<const Signer> Make(const DkimOptions& o) {
    auto s = Signer::Make(o);
    EXPECT_TRUE(s) << s.error();
    return s ? *s : nullptr;
  }

  fs::path dir_;
  const std::string message_ =
      "From: Jo <jo@example.org>\r\nTo: x@y.example\r\nSubject: hi\r\n\r\nbody\r\n.line\r\n";
  const Submission auth_ = Client(true, false, "192.0.2.1");
};

TEST_F(DkimSigner, OneSignaturePerKeyOnTopOfTheUnchangedMessage) {
  DkimOptions o;
  o.keys = {NewKey("example.org", "rsa1", "rsa2048"), NewKey("example.org", "ed1", "ed25519")};
  auto signer = Make(o);
  std::string m = message_;
  const SignResult r = signer->Sign(m, auth_);
  ASSERT_EQ(r.outcome, Outcome::kSigned) << r.detail;
  ASSERT_TRUE(m.ends_with(message_));
  const std::string fields = m.substr(0, m.size() - message_.size());
  EXPECT_TRUE(
      fields.starts_with("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org;"))
      << fields;
  EXPECT_NE(fields.find("\r\nDKIM-Signature: v=1; a=ed25519-sha256;"), std::string::npos);
  EXPECT_NE(fields.find("s=ed1;"), std::string::npos);
  EXPECT_EQ(fields.find("x="), std::string::npos);  // no expiry unless asked
  // From is signed once more than it occurs.
  EXPECT_NE(fields.find("h=From:To:Subject:From"), std::string::npos) << fields;
  // Every line ends in CRLF and no bare LF is left.
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (fields[i] == '\n') {
      ASSERT_EQ(fields[i - 1], '\r');
    }
  }
}

TEST_F(DkimSigner, AUserIsSignedOnlyForTheFromAddressesItMayUse) {
  DkimOptions o;
  o.keys = {NewKey("example.org", "rsa1", "rsa2048")};
  auto signer = Make(o);
  Submission alice = auth_;
  alice.user = "alice";
  std::string seen;
  alice.may_use_from = [&](std::string_view a) {
    seen = a;
    return a.ends_with("@sales.example.org");
  };
  std::string m = message_;
  const SignResult r = signer->Sign(m, alice);
  EXPECT_EQ(r.outcome, Outcome::kNotPermitted) << r.detail;
  EXPECT_EQ(seen, "jo@example.org");
  EXPECT_EQ(m, message_);
  EXPECT_NE(r.detail.find("alice"), std::string::npos) << r.detail;
  std::string sales = "From: s@Sales.Example.org\r\n\r\nx\r\n";
  o.sign_subdomains = true;
  EXPECT_EQ(Make(o)->Sign(sales, alice).outcome, Outcome::kSigned);
}

TEST_F(DkimSigner, OversignsTheFieldsAReaderSees) {
  DkimOptions o;
  o.keys = {NewKey("example.org", "rsa1", "rsa2048")};
  std::string m = message_;
  ASSERT_EQ(Make(o)->Sign(m, auth_).outcome, Outcome::kSigned);
  std::string unfolded;
  for (char c : m.substr(0, m.find("\r\n\r\n"))) {
    if (c != '\r' && c != '\n' && c != '\t' && c != ' ') unfolded.push_back(c);
  }
  const auto h = unfolded.substr(unfolded.find(";h=") + 3);  // not bh=
  const std::string list = h.substr(0, h.find(';'));
  for (const char* name : {"From", "Subject", "To", "Reply-To", "Cc", "Date", "Message-ID",
                           "Content-Type", "List-Unsubscribe"}) {
    EXPECT_NE(list.find(std::string(name)), std::string::npos) << name << " in " << list;
  }
  // Present fields appear twice: signed, and signed as absent once more.
  for (const char* name : {"From:", "Subject:"}) {
    const auto first = list.find(name);
    EXPECT_NE(list.find(name, first + 1), std::string::npos) << name << " in " << list;
  }
}

TEST_F(DkimSigner, RefusesAHeaderWithANulByteOrALineThatIsNoField) {
  DkimOptions o;
  o.keys = {NewKey("example.org", "rsa1", "rsa2048")};
  std::string no_field = "From: jo@example.org\r\nno colon here\r\n\r\nx\r\n";
  const std::string as_received = no_field;
  const SignResult r = Make(o)->Sign(no_field, auth_);
  EXPECT_EQ(r.outcome, Outcome::kMalformed) << r.detail;  // not kError: it is no passing fault
  EXPECT_EQ(no_field, as_received);
  std::string m = "From: jo@example.org\r\nSubject: a" + std::string(1, '\0') + "b\r\n\r\nx\r\n";
  const std::string before = m;
  EXPECT_EQ(Make(o)->Sign(m, auth_).outcome, Outcome::kMalformed);
  EXPECT_EQ(m, before);
}

TEST_F(DkimSigner, SourcesDecideWhoIsSigned) {
  DkimOptions o;
  o.keys = {NewKey("example.org", "s", "ed25519")};
  auto signer = Make(o);
  std::string m = message_;
  EXPECT_EQ(signer->Sign(m, Client(false, true, "10.0.0.1")).outcome, Outcome::kNotSource);
  EXPECT_EQ(m, message_);
  o.sign_trusted = true;
  o.trusted_sources = {*IpNetwork::Parse("10.1.0.0/16")};
  signer = Make(o);
  EXPECT_EQ(signer->Sign(m, Client(false, true, "10.0.0.1")).outcome, Outcome::kNotSource);
  EXPECT_EQ(signer->Sign(m, Client(false, false, "10.1.0.1")).outcome, Outcome::kNotSource);
  EXPECT_EQ(signer->Sign(m, Client(false, true, "10.1.0.1")).outcome, Outcome::kSigned);
}

TEST_F(DkimSigner, KeyByFromDomainAndSubdomainsOnlyWhenAsked) {
  DkimOptions o;
  o.keys = {NewKey("example.org", "s", "ed25519")};
  auto signer = Make(o);
  std::string other = "From: a@other.example\r\n\r\nx\r\n";
  const SignResult r = signer->Sign(other, auth_);
  EXPECT_EQ(r.outcome, Outcome::kNoKey);
  EXPECT_EQ(r.domain, "other.example");
  std::string sub = "From: a@mail.example.org\r\n\r\nx\r\n";
  EXPECT_EQ(signer->Sign(sub, auth_).outcome, Outcome::kNoKey);
  o.sign_subdomains = true;
  signer = Make(o);
  EXPECT_EQ(signer->Sign(sub, auth_).outcome, Outcome::kSigned);
  EXPECT_NE(sub.find("d=example.org;"), std::string::npos);
}

TEST_F(DkimSigner, LeavesASignatureForTheSameDomainAlone) {
  DkimOptions o;
  o.keys = {NewKey("example.org", "s", "ed25519")};
  auto signer = Make(o);
  std::string m = message_;
  ASSERT_EQ(signer->Sign(m, auth_).outcome, Outcome::kSigned);
  const std::string once = m;
  EXPECT_EQ(signer->Sign(m, auth_).outcome, Outcome::kAlreadySigned);
  EXPECT_EQ(m, once);
}

TEST_F(DkimSigner, OwnMailIsSignedForTheNoticesDomain) {
  DkimOptions o;
  o.keys = {NewKey("relay.example", "n", "ed25519")};
  auto signer = Make(o);
  std::string m = "From: MAILER-DAEMON@relay.example\r\nSubject: bounce\r\n\r\nx\r\n";
  EXPECT_EQ(signer->SignOwn(m, "relay.example").outcome, Outcome::kSigned);
  EXPECT_NE(m.find("d=relay.example;"), std::string::npos);
}

TEST_F(DkimSigner, AKeyOthersCanReadIsRefused) {
  DkimOptions o;
  o.keys = {NewKey("example.org", "s", "ed25519")};
  fs::permissions(o.keys[0].key_file, fs::perms::others_read, fs::perm_options::add);
  const auto s = Signer::Make(o);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().find("mode 0604 lets others read or change the key"), std::string::npos)
      << s.error();
  fs::permissions(o.keys[0].key_file, fs::perms::group_read, fs::perm_options::add);
  fs::permissions(o.keys[0].key_file, fs::perms::others_read, fs::perm_options::remove);
  EXPECT_TRUE(Signer::Make(o));  // 0640: a group may read it (the daemon's group)
  o.keys[0].key_file = dir_;
  EXPECT_FALSE(Signer::Make(o));  // a directory
}

TEST_F(DkimSigner, AnUnreadableKeyIsRefusedWithItsName) {
  DkimOptions o;
  o.keys = {{"example.org", "s", dir_ / "missing.pem"}};
  auto s = Signer::Make(o);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().find("s._domainkey.example.org"), std::string::npos) << s.error();
  EXPECT_NE(s.error().find("missing.pem"), std::string::npos);
}

}  // namespace
}  // namespace danerelay::relay::dkim
