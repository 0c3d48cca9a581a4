#include "relay/inbound/accounts.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <set>

namespace danerelay::relay {
namespace {

using ::testing::HasSubstr;

TEST(AccountsTest, ParsesAndVerifiesYescryptAndSha512) {
  const std::string y = *HashPassword("secret");
  EXPECT_TRUE(y.starts_with("$y$"));
  // A SHA-512-crypt hash made by libcrypt from the same phrase.
  const std::string six =
      "$6$saltsalt$"
      "TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77"
      "vwPZN.Pq.H91p5hVO1";
  auto a = Accounts::Parse("# accounts\n\nalice:" + y + "\nbob:" + six + "\n", "users");
  ASSERT_TRUE(a) << a.error();
  EXPECT_EQ(a->size(), 2u);
  EXPECT_TRUE(a->Verify("alice", "secret"));
  EXPECT_FALSE(a->Verify("alice", "Secret"));
  EXPECT_FALSE(a->Verify("alice", ""));
  EXPECT_FALSE(a->Verify("carol", "secret"));  // unknown user
  EXPECT_TRUE(a->Verify("bob", "secret"));
}

TEST(AccountsTest, ErrorsNameFileAndLine) {
  EXPECT_THAT(Accounts::Parse("alice\n", "users").error(),
              HasSubstr("users:1: expected user:hash"));
  EXPECT_THAT(Accounts::Parse("\nal ice:$y$x\n", "users").error(), HasSubstr("users:2: 'al ice'"));
  EXPECT_THAT(Accounts::Parse("alice:$1$md5$x\n", "users").error(),
              HasSubstr("users:1: alice: unsupported hash"));
  EXPECT_THAT(Accounts::Parse("alice:$y$a\nalice:$y$b\n", "users").error(),
              HasSubstr("users:2: alice: listed twice"));
}

TEST(AccountsTest, SetPasswordReplacesAtomicallyWithMode0600) {
  const auto file =
      std::filesystem::temp_directory_path() / ("danerelay-users-" + std::to_string(::getpid()));
  std::filesystem::remove(file);
  ASSERT_TRUE(SetPassword(file, "alice", *HashPassword("one")));
  ASSERT_TRUE(SetPassword(file, "bob", *HashPassword("two")));
  ASSERT_TRUE(SetPassword(file, "alice", *HashPassword("three")));
  auto a = Accounts::Load(file);
  ASSERT_TRUE(a) << a.error();
  EXPECT_EQ(a->size(), 2u);
  EXPECT_TRUE(a->Verify("alice", "three"));
  EXPECT_FALSE(a->Verify("alice", "one"));
  EXPECT_TRUE(a->Verify("bob", "two"));
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::filesystem::remove(file);
}

TEST(AccountsTest, SetPasswordKeepsTheModeAndFollowsNoPlantedLink) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("danerelay-users-dir-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directory(dir);
  const auto file = dir / "users", victim = dir / "victim";
  ASSERT_TRUE(SetPassword(file, "alice", *HashPassword("one")));
  ASSERT_EQ(::chmod(file.c_str(), 0640), 0);
  { std::ofstream(victim) << "not yours\n"; }
  // The temporary file's old, fixed name, planted as a link to another file.
  std::filesystem::create_symlink(victim, dir / "users.tmp");
  ASSERT_TRUE(SetPassword(file, "bob", *HashPassword("two")));
  std::ifstream in(victim);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "not yours\n");
  EXPECT_TRUE(std::filesystem::is_symlink(dir / "users.tmp"));
  struct stat st {};
  ASSERT_EQ(::lstat(file.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  auto a = Accounts::Load(file);
  ASSERT_TRUE(a) << a.error();
  EXPECT_EQ(a->size(), 2u);
  // Nothing else left in the directory (no temporary file).
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir),
                          std::filesystem::directory_iterator()),
            3);
  std::filesystem::remove_all(dir);
}

TEST(AccountsTest, SenderBinding) {
  const std::map<std::string, std::vector<std::string>> senders = {
      {"alice", {"alice@example.org", "@sales.example.org"}}};
  EXPECT_TRUE(MaySendAs(senders, "alice", "Alice@Example.org"));
  EXPECT_TRUE(MaySendAs(senders, "alice", "anyone@sales.example.org"));
  EXPECT_FALSE(MaySendAs(senders, "alice", "ceo@example.org"));
  EXPECT_FALSE(MaySendAs(senders, "alice", "x@evil-sales.example.org"));
  EXPECT_TRUE(MaySendAs(senders, "alice", ""));               // bounces
  EXPECT_TRUE(MaySendAs(senders, "bob", "ceo@example.org"));  // no entry: any sender
}

// Issue 20: an unknown user was checked against a yescrypt dummy, so a user with a (faster)
// SHA-512-crypt hash answered 60-130 ms sooner than a name that does not exist.
TEST(AccountsTest, UnknownUsersCostWhatAnAccountCosts) {
  const std::string six =
      "$6$saltsalt$"
      "TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77"
      "vwPZN.Pq.H91p5hVO1";
  const std::string rounds =
      "$6$rounds=10000$saltsalt$"
      "WowrPBpEDVlCoruBosYlrZycTCx3//TyDHYqEhX9DUHHt0XTztUqzQDDUuvUGRA8aUe9p55hcAxeGcu58sm3u.";
  auto only_six = Accounts::Parse("bob:" + six + "\n", "users");
  ASSERT_TRUE(only_six) << only_six.error();
  EXPECT_EQ(only_six->DummySettingFor("carol"), "$6$saltsalt");
  EXPECT_FALSE(only_six->Verify("carol", "secret"));

  const std::string y = *HashPassword("secret");
  const std::string y_scheme = y.substr(0, y.find('$', 3) + 1);  // "$y$j9T$": scheme and cost
  auto mixed = Accounts::Parse("alice:" + y + "\nbob:" + six + "\ndave:" + rounds + "\n", "users");
  ASSERT_TRUE(mixed) << mixed.error();
  std::set<std::string> schemes;
  for (const char* user : {"carol", "eve", "mallory", "trent", "peggy", "victor", "walter", "oscar",
                           "sybil", "zoe", "x1", "x2", "x3", "x4", "x5", "x6"}) {
    const std::string dummy(mixed->DummySettingFor(user));
    EXPECT_EQ(dummy, mixed->DummySettingFor(user)) << "the same user, the same dummy";
    if (dummy.starts_with(y_scheme)) {
      schemes.insert("yescrypt");
    } else if (dummy.starts_with("$6$rounds=10000$")) {
      schemes.insert("sha512 10000");
    } else {
      EXPECT_EQ(dummy, "$6$saltsalt");
      schemes.insert("sha512");
    }
    EXPECT_FALSE(mixed->Verify(user, "secret"));
  }
  EXPECT_EQ(schemes.size(), 3u) << "every scheme and cost in the file is used";
}

}  // namespace
}  // namespace danerelay::relay
