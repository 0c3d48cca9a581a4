"""End to end, issue 10: `danerelay config check` loads what the daemon loads at start, the same
way (paths relative to the file): listener certificates with their keys, the trust anchor, the
AUTH accounts; each problem is named, and the exit status is 78."""
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import DANERELAY, DANERELAYD, make_cert

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")


def exit_codes(page):
    """The EXIT STATUS section of a manual page: {code: its description, one line}."""
    with open(os.path.join(ROOT, page)) as f:
        lines = f.read().splitlines()
    start = lines.index(".SH EXIT STATUS") + 1
    codes, code = {}, None
    for line in lines[start:]:
        if line.startswith(".SH"):
            break
        if line == ".TP":
            code = None
        elif code is None and line.startswith(".B ") and line[3:].isdigit():
            code = int(line[3:])
            codes[code] = ""
        elif code is not None:
            text = line.split(" ", 1)[1] if line.startswith(".") and " " in line else line
            codes[code] = (codes[code] + " " + text.replace("\\-", "-")).strip()
    return codes


def code_for(codes, words):
    """The one code whose description holds `words`."""
    found = [c for c, text in codes.items() if words in text]
    assert len(found) == 1, (words, codes)
    return found[0]


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

    def test_every_problem_is_listed_with_file_line_and_key(self):
        path = os.path.join(self.dir, "many.toml")
        with open(path, "w") as f:
            f.write('[server]\nuser = 5\ncolour = "blue"\n[limits]\nmax_recipients = "many"\n'
                    '[retry]\nmin_backoff = "soon"\n')
        r = check(path, self.other)
        self.assertEqual(r.returncode, code_for(exit_codes("tools/cli/danerelay.8"),
                                                "configuration is invalid"), r.stderr)
        err = r.stderr.decode()
        for line in ("many.toml:3: server.colour: unknown key",
                     "many.toml:2: server.user: expected a string",
                     "many.toml:5: limits.max_recipients: expected an integer",
                     "many.toml:7: retry.min_backoff: expected a duration"):
            self.assertIn(line, err)
        self.assertEqual(err.count("danerelay: "), 4, err)


class ExitCodesTest(unittest.TestCase):
    """The exit status of each case is the one the manual page gives for it."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="danerelay-codes-")
        self.bad = os.path.join(self.dir, "bad.toml")
        with open(self.bad, "w") as f:
            f.write("[limits]\nmax_recipients = -1\n")
        self.good = os.path.join(self.dir, "good.toml")
        with open(self.good, "w") as f:
            f.write(f'[queue]\npath = "{self.dir}/q"\n[dns]\nvalidation_canary = ""\n'
                    f'[auth]\nusers_file = "{self.dir}/users"\n')

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_(self, program, *args):
        return subprocess.run([os.path.abspath(program), *args], capture_output=True,
                              timeout=60, cwd=self.dir, stdin=subprocess.DEVNULL)

    def test_danerelay(self):
        codes = exit_codes("tools/cli/danerelay.8")
        usage = code_for(codes, "command line cannot be used")
        invalid = code_for(codes, "configuration is invalid")
        self.assertEqual((usage, invalid), (64, 78))  # EX_USAGE, EX_CONFIG (sysexits.h)
        cases = [
            (("--config", self.bad, "queue", "list"), invalid),
            (("config", "check", self.bad), invalid),
            (("--config", self.good, "dane-check"), usage),  # no domain
            (("--config", self.good, "queue", "list", "--state", "nonsense"), usage),
            (("--config", self.good, "queue", "list", "--no-such-option"), usage),
            (("--config", self.good, "frobnicate"), usage),
            (("--config", self.good, "passwd", "bad:name"), usage),
        ]
        for args, want in cases:
            r = self.run_(DANERELAY, *args)
            self.assertEqual(r.returncode, want, (args, r.stdout, r.stderr))

    def test_dane_check_refuses_an_address(self):
        usage = code_for(exit_codes("tools/cli/danerelay.8"), "command line cannot be used")
        r = self.run_(DANERELAY, "--config", self.good, "dane-check", "user@example.net")
        self.assertEqual(r.returncode, usage, r.stderr)
        self.assertIn(b"dane-check takes a domain, not an address: 'user@example.net'", r.stderr)
        self.assertEqual(r.stdout, b"")

    def test_danerelayd(self):
        codes = exit_codes("relay/daemon/danerelayd.8")
        usage = code_for(codes, "command line cannot be used")
        invalid = code_for(codes, "configuration is invalid")
        self.assertEqual((usage, invalid), (64, 78))
        r = self.run_(DANERELAYD, "--no-such-option")
        self.assertEqual(r.returncode, usage, r.stderr)
        r = self.run_(DANERELAYD, "--config")  # the value is missing
        self.assertEqual(r.returncode, usage, r.stderr)
        r = self.run_(DANERELAYD, "--config", self.bad)
        self.assertEqual(r.returncode, invalid, r.stderr)
        self.assertIn(b"bad.toml:2: limits.max_recipients", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
