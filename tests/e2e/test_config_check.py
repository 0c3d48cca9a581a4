"""End to end, issue 10: `danerelay config check` loads what the daemon loads at start, the same
way (paths relative to the file): listener certificates with their keys, the trust anchor, the
AUTH accounts; each problem is named, and the exit status is 78."""
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import DANERELAY, make_cert


def check(config, cwd):
    return subprocess.run([os.path.abspath(DANERELAY), "config", "check", config],
                          capture_output=True, timeout=60, cwd=cwd)


class ConfigCheckTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="danerelay-check-")
        self.other = tempfile.mkdtemp(prefix="danerelay-cwd-")  # run from elsewhere
        make_cert(self.dir)
        os.makedirs(os.path.join(self.dir, "b"))
        make_cert(os.path.join(self.dir, "b"), cn="other.test")
        with open(os.path.join(self.dir, "root.key"), "w") as f:
            f.write(". 172800 IN DS 20326 8 2 "
                    "E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n")
        with open(os.path.join(self.dir, "users"), "w") as f:
            f.write("alice:$y$j9T$abcdefghijklmnopqrstu.$0123456789012345678901234567890123456789012\n")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.other, ignore_errors=True)

    def write(self, key="relay.key", anchor="root.key", users="users"):
        path = os.path.join(self.dir, "danerelay.toml")
        with open(path, "w") as f:
            f.write(f"""[[listener]]
address = "127.0.0.1"
port = 2525
starttls = true
cert_file = "relay.crt"
key_file = "{key}"
[dns]
trust_anchor_file = "{anchor}"
validation_canary = ""
[auth]
users_file = "{users}"
""")
        return path

    def test_a_good_file_passes(self):
        r = check(self.write(), self.other)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b": ok (1 listener(s)", r.stdout)

    def test_each_problem_is_named(self):
        with open(os.path.join(self.dir, "empty.key"), "w") as f:
            f.write("; no records\n")
        with open(os.path.join(self.dir, "bad-users"), "w") as f:
            f.write("alice:not-a-hash\n")
        r = check(self.write(key="b/relay.key", anchor="empty.key", users="bad-users"), self.other)
        self.assertEqual(r.returncode, 78)
        err = r.stderr.decode()
        self.assertIn("listener 127.0.0.1:2525: ", err)
        self.assertIn("[dns] trust anchor file", err)
        self.assertIn("holds no DS or DNSKEY record", err)
        self.assertIn("[auth] users_file", err)
        self.assertEqual(err.count("danerelay: "), 3, err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
