"""End to end, issue 20: the files the daemon reads as [server] user. `danerelay passwd` keeps
the owner, group and mode of the users file (root:GROUP 0640 is how the account reads it) and
follows no link planted beside it; `config check` says when [server] user cannot read a file
the daemon reads on reload; a SIGHUP that cannot read one logs an error naming it and keeps the
old configuration instead of "reloaded configuration"."""
import grp
import os
import pwd
import signal
import stat
import subprocess
import unittest

from harness import DANERELAY, Relay, wait_for

HASH = "$y$j9T$abcdefghijklmnopqrstu.$0123456789012345678901234567890123456789012"


def passwd(relay, user, password):
    return subprocess.run([os.path.abspath(DANERELAY), "--config", relay.config, "passwd", user],
                          input=(password + "\n").encode(), capture_output=True, timeout=60)


def users_in(path):
    with open(path) as f:
        return sorted(line.split(":", 1)[0] for line in f if ":" in line)


class PasswdTest(unittest.TestCase):
    def setUp(self):
        self.relay = Relay(extra_toml='[auth]\nusers_file = "users"\n')
        self.users = os.path.join(self.relay.dir, "users")
        with open(self.users, "w") as f:
            f.write(f"alice:{HASH}\n")

    def tearDown(self):
        self.relay.cleanup()

    @unittest.skipUnless(os.geteuid() == 0, "needs root: the file belongs to root and a group")
    def test_keeps_owner_group_and_mode(self):
        mail = grp.getgrnam("mail").gr_gid  # stands for the daemon's group (root:danerelay)
        os.chown(self.users, 0, mail)
        os.chmod(self.users, 0o640)
        r = passwd(self.relay, "bob", "secret")
        self.assertEqual(r.returncode, 0, r.stderr)
        st = os.stat(self.users)
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (0, mail, 0o640))
        self.assertEqual(users_in(self.users), ["alice", "bob"])

    def test_keeps_the_mode_and_follows_no_planted_link(self):
        os.chmod(self.users, 0o640)
        victim = os.path.join(self.relay.dir, "victim")
        with open(victim, "w") as f:
            f.write("not yours\n")
        os.chmod(victim, 0o644)
        # The old fixed name of the temporary file, pointing elsewhere.
        planted = self.users + ".tmp"
        os.symlink(victim, planted)
        r = passwd(self.relay, "bob", "secret")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(victim) as f:
            self.assertEqual(f.read(), "not yours\n")
        self.assertEqual(stat.S_IMODE(os.stat(victim).st_mode), 0o644)
        self.assertTrue(os.path.islink(planted))
        self.assertEqual(stat.S_IMODE(os.stat(self.users).st_mode), 0o640)
        self.assertFalse(os.path.islink(self.users))
        self.assertEqual(users_in(self.users), ["alice", "bob"])
        # No temporary file left behind.
        self.assertEqual(sorted(os.listdir(self.relay.dir)),
                         ["danerelay.toml", "users", "users.tmp", "victim"])


@unittest.skipUnless(os.geteuid() == 0, "needs root: the daemon drops from root to [server] user")
class ReadableByTheAccountTest(unittest.TestCase):
    def setUp(self):
        self.nobody = pwd.getpwnam("nobody")
        self.relay = Relay(extra_toml='[auth]\nusers_file = "users"\n')
        os.chmod(self.relay.dir, 0o755)  # so that the account can reach its files
        with open(self.relay.config) as f:
            text = f.read()
        with open(self.relay.config, "w") as f:
            f.write(text.replace('hostname = "relay.test"',
                                 'hostname = "relay.test"\nuser = "nobody"'))
        os.chmod(self.relay.config, 0o644)
        self.users = os.path.join(self.relay.dir, "users")
        with open(self.users, "w") as f:
            f.write(f"alice:{HASH}\n")
        self.readable_by_nobody()

    def tearDown(self):
        self.relay.cleanup()

    def readable_by_nobody(self):
        os.chown(self.users, 0, self.nobody.pw_gid)
        os.chmod(self.users, 0o640)

    def unreadable_by_nobody(self):
        os.chown(self.users, 0, 0)
        os.chmod(self.users, 0o600)

    def check(self):
        return subprocess.run([os.path.abspath(DANERELAY), "config", "check", self.relay.config],
                              capture_output=True, timeout=60)

    def test_config_check_names_the_file_the_account_cannot_read(self):
        r = self.check()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.unreadable_by_nobody()
        r = self.check()
        self.assertEqual(r.returncode, 78, r.stdout)
        err = r.stderr.decode()
        self.assertIn(f"as [server] user nobody: [auth] users_file {self.users}: cannot read: "
                      "Permission denied", err)
        # The configuration file itself is read again on reload too.
        os.chmod(self.relay.config, 0o600)
        err = self.check().stderr.decode()
        self.assertIn(f"configuration file {self.relay.config}: cannot read", err)

    def test_keygen_gives_the_key_to_the_account_and_config_check_reads_it_as_that(self):
        key = os.path.join(self.relay.dir, "dkim", "example.org.s1.pem")
        r = subprocess.run([os.path.abspath(DANERELAY), "--config", self.relay.config, "dkim",
                            "keygen", "example.org", "--selector", "s1", "--algorithm", "ed25519",
                            "--key-file", key], capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        st = os.stat(key)
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (self.nobody.pw_uid, 0o600))
        os.chmod(os.path.dirname(key), 0o755)
        with open(self.relay.config, "a") as f:
            f.write(f'[[dkim.key]]\ndomain = "example.org"\nselector = "s1"\nkey_file = "{key}"\n')
        r = self.check()
        self.assertEqual(r.returncode, 0, r.stderr)
        os.chown(key, 0, 0)  # as a key copied in by root would be
        r = self.check()
        self.assertEqual(r.returncode, 78, r.stdout)
        self.assertIn(f"as [server] user nobody: [[dkim.key]] s1._domainkey.example.org key_file "
                      f"{key}: cannot read: Permission denied", r.stderr.decode())

    def test_a_reload_that_cannot_read_the_users_file_says_so(self):
        self.relay.start()
        try:
            wait_for(lambda: "started:" in self.relay.logs(), what="the start line")
            self.relay.reload()  # readable: reloaded
            self.unreadable_by_nobody()
            before = self.relay.logs().count("reloaded configuration")
            self.relay.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "reload failed" in self.relay.logs(), what="the failed reload")
            logs = self.relay.logs()
            self.assertIn("error: reload failed, keeping the old configuration: [auth] "
                          f"users_file {self.users}: cannot read: Permission denied", logs)
            self.assertEqual(logs.count("reloaded configuration"), before)
            # Readable again, the next reload works.
            self.readable_by_nobody()
            self.relay.reload()
        finally:
            self.relay.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
