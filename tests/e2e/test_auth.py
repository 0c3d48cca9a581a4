"""End to end: SMTP AUTH (RFC 4954) with real TLS clients (Python's smtplib and swaks) against
the real daemon: never in plain text, PLAIN and LOGIN inside STARTTLS and on an implicit-TLS
listener (RFC 8314), require_tls, sender binding, the per-IP failure limit, and accounts made
with `danerelay passwd`. No client is trusted by address here: only authenticated ones relay."""
import base64
import signal
import smtplib
import ssl
import subprocess
import time
import unittest

from harness import DANERELAY, Relay, free_port, queued_id, wait_for

MESSAGE = b"From: alice@example.org\r\nSubject: auth\r\n\r\nbody\r\n"


def passwd(relay, user, password):
    r = subprocess.run([DANERELAY, "--config", relay.config, "passwd", user],
                       input=(password + "\n").encode(), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


class AuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.implicit_port, cls.required_port = free_port(), free_port()
        cls.relay = Relay(starttls=True, trusted=[], extra_toml=f"""
[auth]
users_file = "users"
max_failures = 3
[auth.senders]
"bound" = ["bound@example.org", "@bound.example"]

[[listener]]
address = "127.0.0.1"
port = {cls.implicit_port}
implicit_tls = true
cert_file = "relay.crt"
key_file = "relay.key"

[[listener]]
address = "127.0.0.1"
port = {cls.required_port}
starttls = true
require_tls = true
cert_file = "relay.crt"
key_file = "relay.key"
""")
        cls.ctx = ssl.create_default_context(cafile=cls.relay.cert)
        cls.ctx.check_hostname = False
        passwd(cls.relay, "alice", "wonderland")
        passwd(cls.relay, "bound", "pw2")
        cls.relay.start()

    @classmethod
    def tearDownClass(cls):
        cls.relay.close()

    def tls_session(self, port=None, source="127.0.0.1"):
        c = smtplib.SMTP("127.0.0.1", port or self.relay.tls_port, timeout=30,
                         source_address=(source, 0))
        c.ehlo("client.example")
        c.starttls(context=self.ctx)
        c.ehlo("client.example")
        return c

    def send(self, c, sender="alice@example.org"):
        c.mail(sender)
        c.rcpt("bob@example.net")
        code, reply = c.data(MESSAGE)
        self.assertEqual(code, 250, reply)
        return queued_id(reply)

    def test_auth_is_refused_in_plain_text(self):
        with smtplib.SMTP("127.0.0.1", self.relay.tls_port, timeout=30) as c:
            c.ehlo("client.example")
            self.assertFalse(c.has_extn("auth"))
            code, reply = c.docmd("AUTH", "PLAIN " + plain("alice", "wonderland"))
            self.assertEqual(code, 538, reply)
            self.assertIn(b"5.7.11 Encryption required", reply)

    def test_plain_inside_starttls_relays_and_is_recorded(self):
        with self.tls_session() as c:
            self.assertIn("PLAIN", c.esmtp_features["auth"])
            self.assertIn("LOGIN", c.esmtp_features["auth"])
            c.login("alice", "wonderland")  # smtplib tries PLAIN first here
            qid = self.send(c)
        shown = self.relay.show_json(qid)
        self.assertEqual(shown["auth_user"], "alice")
        self.assertEqual(shown["protocol"], "ESMTPSA")
        self.assertIn("with ESMTPSA id", shown["headers"][0][1])
        self.assertIn("Auth user:  alice", self.relay.cli("queue", "show", qid).stdout.decode())
        self.assertIn("sasl_username=alice", self.relay.logs())

    def test_login_mechanism(self):
        with self.tls_session() as c:
            c.user, c.password = "alice", "wonderland"
            code, reply = c.auth("LOGIN", c.auth_login, initial_response_ok=False)
            self.assertEqual(code, 235, reply)
            self.send(c)

    def test_swaks_auth_plain_over_starttls(self):
        r = subprocess.run(["swaks", "--server", f"127.0.0.1:{self.relay.tls_port}", "--tls",
                            "--auth", "PLAIN", "--auth-user", "alice", "--auth-password",
                            "wonderland", "--from", "alice@example.org", "--to",
                            "bob@example.net"], capture_output=True, timeout=60)
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, out + r.stderr.decode())
        self.assertIn("235 2.7.0 Authentication successful", out)
        self.assertIn("queued as", out)

    def test_implicit_tls_listener(self):
        with smtplib.SMTP_SSL("127.0.0.1", self.implicit_port, context=self.ctx,
                              timeout=30) as c:
            c.ehlo("client.example")
            self.assertFalse(c.has_extn("starttls"))
            c.login("alice", "wonderland")
            qid = self.send(c)
        self.assertEqual(self.relay.show_json(qid)["protocol"], "ESMTPSA")

    def test_unauthenticated_untrusted_client_cannot_relay(self):
        with self.tls_session() as c:
            c.mail("alice@example.org")
            code, reply = c.rcpt("bob@example.net")
            self.assertEqual(code, 554, reply)
            self.assertIn(b"5.7.1 <bob@example.net>: Relay access denied", reply)

    def test_require_tls(self):
        with smtplib.SMTP("127.0.0.1", self.required_port, timeout=30) as c:
            c.ehlo("client.example")
            code, reply = c.mail("alice@example.org")
            self.assertEqual(code, 530, reply)
            self.assertIn(b"5.7.0 Must issue a STARTTLS command first", reply)
        with self.tls_session(self.required_port) as c:
            c.login("alice", "wonderland")
            self.send(c)

    def test_sender_binding(self):
        with self.tls_session() as c:
            c.login("bound", "pw2")
            code, reply = c.mail("ceo@example.org")
            self.assertEqual(code, 553, reply)
            self.assertIn(b"5.7.1 <ceo@example.org>: Sender address rejected: not owned by user "
                          b"bound", reply)
            self.send(c, "bound@example.org")
            self.send(c, "sales@bound.example")

    def test_wrong_password_slowed_then_the_client_is_cut_off(self):
        source = "127.0.0.61"  # its own client IP: the limit is per IP
        start = time.monotonic()
        with self.tls_session(source=source) as c:
            for expected_delay in (1, 2):
                t0 = time.monotonic()
                code, reply = c.docmd("AUTH", "PLAIN " + plain("alice", "not-the-password"))
                self.assertEqual(code, 535, reply)
                self.assertIn(b"5.7.8", reply)
                self.assertGreaterEqual(time.monotonic() - t0, expected_delay - 0.1)
            code, reply = c.docmd("AUTH", "PLAIN " + plain("alice", "still-wrong"))
            self.assertEqual(code, 421, reply)
        self.assertLess(time.monotonic() - start, 20)
        # Within the window, even the right password is not checked for this client.
        with self.tls_session(source=source) as c:
            code, reply = c.docmd("AUTH", "PLAIN " + plain("alice", "wonderland"))
            self.assertEqual(code, 421, reply)
        logs = self.relay.logs()
        self.assertRegex(logs, r"warning: unknown\[127\.0\.0\.\d+\]:\d+: SASL (PLAIN|LOGIN) "
                               r"authentication failed: user=<alice>")
        self.assertNotIn("not-the-password", logs)
        self.assertNotIn("still-wrong", logs)

    def test_passwd_then_login_after_reload(self):
        out = passwd(self.relay, "carol", "new password")
        self.assertIn("carol set in", out)
        self.relay.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: self.relay.logs().count("reloaded configuration") >= 1,
                 what="the reload")
        with self.tls_session() as c:
            c.login("carol", "new password")
            self.send(c, "carol@example.org")


if __name__ == "__main__":
    unittest.main(verbosity=2)
