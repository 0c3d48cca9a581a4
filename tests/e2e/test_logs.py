"""End to end, issue 21 items 3 and 4: the log in Postfix's form, read by Postfix's tools.

A "day" of mixed traffic goes through the real daemon (delivered, deferred by a 4xx, bounced by
a 5xx, refused at RCPT, failed AUTH); pflogsumm --syslog-name=danerelay must count what the test
knows happened, and fail2ban's postfix filter (mode auth, the postfix-sasl jail's, with the
daemon name changed) must match every AUTH failure. Then the operator's commands: each
`danerelay queue` action appears in the daemon's log with the message and the user, a notice
is linked to its message, a refused MAIL names its sender, and a shutdown after an accepted
message logs no reject for it. Static routes to IP literals: no DNS."""
import base64
import os
import pwd
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import threading
import unittest

from aiosmtpd.controller import Controller

from harness import DANERELAY, Relay, free_port, queued_id, wait_for
from mx import free_port_on

MX_IP = "127.0.0.71"
SENDER = "alice@senders.example"
FILTER = "/etc/fail2ban/filter.d/postfix.conf"


class ScriptedMx:
    """Local parts say what happens: "defer*" 451 at RCPT, "reject*" 550, others 250."""

    def __init__(self):
        self.lock = threading.Lock()
        self.delivered = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("defer"):
            return f"451 4.3.0 <{address}>: try again later"
        if address.startswith("reject"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.delivered.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 2.0.0 Ok: stored"


def passwd(relay, user, password):
    r = subprocess.run([DANERELAY, "--config", relay.config, "passwd", user],
                       input=(password + "\n").encode(), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()


def grand_totals(report):
    """pflogsumm's "Grand Totals" counts by name."""
    counts = {}
    for m in re.finditer(r"^\s+(\d+)\s+(received|delivered|deferred|bounced|rejected)\b",
                         report, re.M):
        counts.setdefault(m.group(2), int(m.group(1)))
    return counts


class LogToolsTest(unittest.TestCase):
    N_SENT, N_DEFERRED, N_BOUNCED = 5, 2, 2
    RELAY_DENIED_FROM = ["127.0.0.72", "127.0.0.73", "127.0.0.74"]
    AUTH_FAILURES_FROM = ["127.0.0.75", "127.0.0.76", "127.0.0.77"]

    @classmethod
    def setUpClass(cls):
        cls.port = free_port_on([MX_IP])
        cls.mx = ScriptedMx()
        cls.controller = Controller(cls.mx, hostname=MX_IP, port=cls.port, ready_timeout=10)
        cls.controller.start()
        cls.relay = Relay(deliver=True, starttls=True, trusted=["127.0.0.1/32"], extra_toml=f"""
[auth]
users_file = "users"
max_failures = 100
[retry]
min_backoff = "1h"
[routes]
"ok.example" = "[{MX_IP}]:{cls.port}"
"senders.example" = "[{MX_IP}]:{cls.port}"
""")
        passwd(cls.relay, "alice", "wonderland")
        cls.relay.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.relay.close()
        finally:
            cls.controller.stop()

    def send(self, rcpt, subject):
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30) as c:
            c.ehlo("client.example")
            c.mail(SENDER)
            c.rcpt(rcpt)
            code, reply = c.data(f"Subject: {subject}\r\nMessage-ID: <{subject}@senders.example>"
                                 f"\r\n\r\nbody\r\n".encode())
            self.assertEqual(code, 250, reply)
            return queued_id(reply)

    def test_pflogsumm_and_fail2ban_read_a_day_of_traffic(self):
        sent = [self.send(f"user{i}@ok.example", f"sent-{i}") for i in range(self.N_SENT)]
        deferred = [self.send(f"defer{i}@ok.example", f"deferred-{i}")
                    for i in range(self.N_DEFERRED)]
        bounced = [self.send(f"reject{i}@ok.example", f"bounced-{i}")
                   for i in range(self.N_BOUNCED)]
        # Refused at RCPT: untrusted clients that did not authenticate, and a bad address.
        for ip in self.RELAY_DENIED_FROM:
            with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30,
                              source_address=(ip, 0)) as c:
                c.ehlo("stranger.example")
                c.mail("someone@stranger.example")
                code, _ = c.rcpt("victim@ok.example")
                self.assertEqual(code, 554)
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30) as c:
            c.ehlo("client.example")
            c.mail(SENDER)
            code, _ = c.docmd("RCPT TO:<no at sign>")
            self.assertGreaterEqual(code, 500)
        rejected = len(self.RELAY_DENIED_FROM) + 1
        # AUTH failures, each from its own address (no failure limit reached).
        ctx = ssl.create_default_context(cafile=self.relay.cert)
        ctx.check_hostname = False
        for ip in self.AUTH_FAILURES_FROM:
            with smtplib.SMTP("127.0.0.1", self.relay.tls_port, timeout=30,
                              source_address=(ip, 0)) as c:
                c.ehlo("guesser.example")
                c.starttls(context=ctx)
                c.ehlo("guesser.example")
                code, _ = c.docmd("AUTH", "PLAIN " + base64.b64encode(
                    b"\0alice\0not-the-password").decode())
                self.assertEqual(code, 535)

        # Every outcome is in the log: sent, deferred, bounced, and the notices delivered.
        def settled():
            logs = self.relay.logs()
            return (all(re.search(rf"{q}: to=<[^>]+>, .*status=sent", logs) for q in sent)
                    and all(re.search(rf"{q}: to=<[^>]+>, .*status=deferred", logs)
                            for q in deferred)
                    and all(re.search(rf"{q}: to=<[^>]+>, .*status=bounced", logs)
                            for q in bounced)
                    and len(re.findall(r"status=sent", logs)) >= self.N_SENT + self.N_BOUNCED)
        wait_for(settled, timeout=60, what="every delivery outcome in the log")
        logs = self.relay.logs()
        for q in bounced:
            self.assertRegex(logs, rf"danerelay/bounce\[\d+\]: {q}: sender non-delivery "
                                   rf"notification: \w+")
        self.assertRegex(logs, r"danerelay/smtpd\[\d+\]: NOQUEUE: reject: RCPT from "
                               r"unknown\[127\.0\.0\.72\]: 554 5\.7\.1 <victim@ok\.example>: "
                               r"Relay access denied; from=<someone@stranger\.example> "
                               r"to=<victim@ok\.example> proto=ESMTP helo=<stranger\.example>")
        # Every line starts with a time in UTC, a host and a tag (stderr as rsyslog writes).
        tagged = [l for l in logs.splitlines() if re.match(r"\d{4}-\d\d-\d\dT", l)]
        self.assertTrue(tagged)
        for line in tagged:
            self.assertRegex(line, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \S+ "
                                   r"danerelay/(master|smtpd|cleanup|qmgr|smtp|bounce)\[\d+\]: ")

        report = subprocess.run(["pflogsumm", "--syslog-name=danerelay", self.relay.log_path],
                                capture_output=True, timeout=120, check=True).stdout.decode()
        counts = grand_totals(report)
        truth = {
            "received": self.N_SENT + self.N_DEFERRED + self.N_BOUNCED,
            # Postfix counts the notices' deliveries too.
            "delivered": self.N_SENT + self.N_BOUNCED,
            "deferred": self.N_DEFERRED,
            "bounced": self.N_BOUNCED,
            "rejected": rejected,
        }
        print(f"pflogsumm: {counts}; truth: {truth}")
        self.assertEqual(counts, truth, report)

        # fail2ban's postfix-sasl jail: the postfix filter in mode auth, daemon renamed.
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run(
                ["fail2ban-regex", "--print-all-matched", self.relay.log_path,
                 f"{FILTER}[mode=auth, _daemon=danerelay/\\w+]"],
                capture_output=True, timeout=120, cwd=tmp).stdout.decode()
        failures = [l for l in logs.splitlines() if "authentication failed" in l]
        self.assertEqual(len(failures), len(self.AUTH_FAILURES_FROM), failures)
        matched = re.search(r"^Lines: \d+ lines, \d+ ignored, (\d+) matched", out, re.M)
        self.assertIsNotNone(matched, out)
        self.assertEqual(int(matched.group(1)), len(self.AUTH_FAILURES_FROM), out)
        for ip in self.AUTH_FAILURES_FROM:
            self.assertIn(f"unknown[{ip}]", out)


class OperatorLogTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.relay = Relay(deliver=True, extra_toml="""
[delivery]
connect_timeout = "2s"
[retry]
min_backoff = "1h"
[routes]
"down.example" = "[127.0.0.1]:1"
""").start()

    @classmethod
    def tearDownClass(cls):
        cls.relay.close()

    def send(self, rcpt="x@down.example", sender=SENDER):
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30) as c:
            c.ehlo("admin.example")
            c.mail(sender)
            c.rcpt(rcpt)
            code, reply = c.data(b"Subject: operator\r\n\r\nbody\r\n")
            self.assertEqual(code, 250, reply)
            return queued_id(reply)

    def cli(self, *args, sudo_user=None):
        env = {k: v for k, v in os.environ.items() if k != "SUDO_USER"}
        if sudo_user:
            env["SUDO_USER"] = sudo_user
        r = subprocess.run([DANERELAY, "--config", self.relay.config, "queue", *args],
                           capture_output=True, timeout=60, env=env)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        return r

    def deferred(self, qid):
        wait_for(lambda: re.search(rf"{qid}: to=<[^>]+>, .*status=deferred", self.relay.logs()),
                 what=f"{qid} deferred")

    def test_each_command_line_action_is_in_the_daemon_s_log_with_its_user(self):
        me = pwd.getpwuid(os.getuid()).pw_name
        qid = self.send()
        self.deferred(qid)
        for action, done in (("hold", "held"), ("release", "released")):
            self.cli(action, qid)
            line = "danerelay/qmgr"
            wait_for(lambda: f"{qid}: {done} by {me} (queue {action})" in self.relay.logs(),
                     what=f"the {action} line")
            self.assertRegex(self.relay.logs(),
                             rf"{line}\[\d+\]: {qid}: {done} by {re.escape(me)} "
                             rf"\(queue {action}\)")
        self.cli("delete", qid)
        wait_for(lambda: f"{qid}: removed by {me} (queue delete)" in self.relay.logs(),
                 what="the delete line")

    @unittest.skipUnless(os.geteuid() == 0, "SUDO_USER counts only for root")
    def test_sudo_names_the_user_who_ran_it(self):
        qid = self.send()
        self.deferred(qid)
        self.cli("hold", qid, sudo_user="carol")
        wait_for(lambda: f"{qid}: held by carol via sudo (queue hold)" in self.relay.logs(),
                 what="the hold line")
        self.cli("delete", qid)

    def test_an_operator_bounce_links_its_notice(self):
        me = pwd.getpwuid(os.getuid()).pw_name
        qid = self.send()
        self.deferred(qid)
        self.cli("bounce", qid)
        wait_for(lambda: f"{qid}: bounced by {me} (queue bounce)" in self.relay.logs(),
                 what="the bounce line")
        notice = re.search(rf"danerelay/bounce\[\d+\]: {qid}: sender non-delivery "
                           rf"notification: (\w+)", self.relay.logs())
        self.assertIsNotNone(notice, self.relay.logs()[-3000:])
        shown = self.relay.show_json(notice.group(1))
        self.assertEqual(shown["sender"], "")
        self.assertEqual(shown["recipients"][0]["address"], SENDER)

    def test_a_refused_mail_names_its_sender(self):
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30) as c:
            c.ehlo("big.example")
            code, _ = c.docmd("MAIL FROM:<big@senders.example> SIZE=999999999999")
            self.assertEqual(code, 552)
        self.assertRegex(self.relay.logs(),
                         r"danerelay/smtpd\[\d+\]: NOQUEUE: reject: MAIL from "
                         r"unknown\[127\.0\.0\.1\]: 552 5\.3\.4 Message size exceeds fixed "
                         r"limit; from=<big@senders\.example> proto=ESMTP helo=<big\.example>")

    def test_queue_show_and_list_say_utc(self):
        qid = self.send("y@down.example")
        text = self.relay.cli("queue", "show", qid).stdout.decode()
        self.assertRegex(text, r"Arrival:    \d{4}-\d\d-\d\dT[\d:.]+Z")
        listing = self.relay.cli("queue", "list").stdout.decode()
        self.assertIn("(UTC)", listing)
        self.cli("delete", qid)


class ShutdownLogTest(unittest.TestCase):
    def test_a_shutdown_after_an_accepted_message_logs_no_reject(self):
        relay = Relay().start()
        try:
            s = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
            f = s.makefile("rb")
            f.readline()
            for cmd in (b"EHLO a.example", b"MAIL FROM:<a@senders.example>",
                        b"RCPT TO:<b@down.example>", b"DATA"):
                s.sendall(cmd + b"\r\n")
                line = f.readline()
                while line[3:4] == b"-":
                    line = f.readline()
            s.sendall(b"Subject: x\r\n\r\nbody\r\n.\r\n")
            reply = f.readline()
            self.assertTrue(reply.startswith(b"250"), reply)
            qid = queued_id(reply)
            relay.proc.send_signal(signal.SIGTERM)
            self.assertTrue(f.readline().startswith(b"421"))
            s.close()
            relay.proc.wait(timeout=30)
            relay.log.close()
            relay.proc = None
            logs = relay.logs()
            self.assertIn(f"{qid}: client=", logs)
            self.assertNotIn("reject:", logs)
        finally:
            relay.cleanup()


if __name__ == "__main__":
    unittest.main()
