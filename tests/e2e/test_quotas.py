"""Sending quotas (issue 26 item 6) on the real daemon: user A at 5 messages per 10 s gets
450 4.7.1 on the 6th while user B goes on; A sends again in the next window; 12 parallel
sessions of A together get no more than the quota; a trusted network's per-client quota; an
untrusted client cannot use up the quota of the sender it claims to be."""
import smtplib
import ssl
import threading
import time
import unittest

from harness import Relay
from test_auth import passwd

MESSAGE = b"Subject: quota\r\n\r\nbody\r\n"


class QuotaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.relay = Relay(starttls=True, trusted=["127.0.0.77/32"], extra_toml="""
[auth]
users_file = "users"
[quotas.user]
"a" = { messages = "5/10s" }
"b" = { messages = "100/10s" }
[quotas.client]
"127.0.0.77/32" = { recipients = "3/10s" }
[quotas.sender]
"victim@example.org" = { messages = "2/10s" }
""")
        cls.ctx = ssl.create_default_context(cafile=cls.relay.cert)
        cls.ctx.check_hostname = False
        passwd(cls.relay, "a", "pw-a")
        passwd(cls.relay, "b", "pw-b")
        cls.relay.start()

    @classmethod
    def tearDownClass(cls):
        cls.relay.close()

    def session(self, user):
        c = smtplib.SMTP("127.0.0.1", self.relay.tls_port, timeout=30)
        c.ehlo("client.example")
        c.starttls(context=self.ctx)
        c.ehlo("client.example")
        c.login(user, f"pw-{user}")
        c.user = user
        return c

    def send(self, c, rcpts=("x@example.net",)):
        code, reply = c.mail(f"{c.user}@example.org")
        if code != 250:
            c.rset()
            return code, reply
        for r in rcpts:
            code, reply = c.rcpt(r)
            if code != 250:
                c.rset()
                return code, reply
        return c.data(MESSAGE)

    def wait_for_window_start(self):
        # Fixed 10 s windows aligned to the epoch: start right after a boundary, so that the
        # counts of one test fall in one window.
        time.sleep(10 - time.time() % 10 + 0.05)

    def test_sixth_message_of_a_gets_450_and_b_goes_on_then_a_again(self):
        self.wait_for_window_start()
        with self.session("a") as a, self.session("b") as b:
            codes = [self.send(a)[0] for _ in range(6)]
            self.assertEqual(codes, [250] * 5 + [450], codes)
            code, reply = self.send(a)
            self.assertEqual(code, 450)
            self.assertIn(b"4.7.1", reply)
            self.assertEqual(self.send(b)[0], 250)
        self.assertIn("warning:", self.relay.logs())
        self.wait_for_window_start()
        with self.session("a") as a:
            self.assertEqual(self.send(a)[0], 250)

    def test_parallel_sessions_share_the_quota(self):
        self.wait_for_window_start()
        accepted = []
        lock = threading.Lock()

        def run():
            with self.session("a") as c:
                for _ in range(2):
                    if self.send(c)[0] == 250:
                        with lock:
                            accepted.append(1)
        threads = [threading.Thread(target=run) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        self.assertLessEqual(len(accepted), 5)
        self.assertGreaterEqual(len(accepted), 1)

    def test_trusted_client_quota_by_recipients(self):
        self.wait_for_window_start()
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30,
                          source_address=("127.0.0.77", 0)) as c:
            c.ehlo("trusted.example")
            c.user = "t"
            self.assertEqual(self.send(c, ["1@example.net", "2@example.net"])[0], 250)
            code, reply = self.send(c, ["3@example.net", "4@example.net"])
            self.assertEqual(code, 450, reply)  # the 4th recipient of the window

    def test_an_untrusted_client_cannot_use_up_a_senders_quota(self):
        # An outsider (not trusted, not authenticated) claims victim@example.org as sender:
        # refused as relaying, and the victim's quota stays whole.
        self.wait_for_window_start()
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30,
                          source_address=("127.0.0.88", 0)) as c:
            c.ehlo("outsider.example")
            for _ in range(5):
                code, reply = c.mail("victim@example.org")
                self.assertEqual(code, 250, reply)
                code, reply = c.rcpt("x@example.net")
                self.assertEqual(code, 554, reply)
                self.assertIn(b"Relay access denied", reply)
                c.rset()
        with self.session("b") as b:
            b.user = "victim"
            codes = [self.send(b)[0] for _ in range(3)]
        self.assertEqual(codes, [250, 250, 450], codes)


if __name__ == "__main__":
    unittest.main()
