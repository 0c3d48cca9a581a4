"""End to end, issue 10: the resolver's DNSSEC self-check. A trust anchor file without a DS or
DNSKEY record stops the daemon at start (it would make every answer "insecure" and switch DANE
off). While running, the check's canary stops validating (the test freezes its NSD with
SIGSTOP): the daemon logs an error, `queue stats` and the metrics show it, and mail to a
mandatory-DANE domain is deferred with "DNSSEC validation is not working"; once NSD answers
again the mail goes out, DANE-verified."""
import json
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

from dnsworld import DnsWorld
from harness import DANERELAY, DANERELAYD, Relay, free_port, queued_id, wait_for
from mx import MxServer, free_port_on, self_signed, tlsa_3_1_1

MX_IP = "127.0.0.51"
# The bound of each wait on the daemon: generous, as a loaded machine needs; 5 of them fit in
# the test's 300 s.
WAIT = 55


def process_tree(pid):
    """`pid` and its descendants (NSD serves from child processes it forks)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def signal_tree(pid, sig):
    for p in process_tree(pid):
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


class DeferredMessageCase(unittest.TestCase):
    def deferred_message(self, relay):
        """Sends one message for the mandatory-DANE domain while validation is not working and
        waits until it is deferred; returns its queue id and a function that reads its recipient
        (`queue show`)."""
        with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as c:
            c.ehlo("health.example")
            c.mail("<>")
            c.rcpt("user@mand.example")
            code, reply = c.data(b"Subject: wait for DNSSEC\r\n\r\nx\r\n")
            self.assertEqual(code, 250, reply)
            qid = queued_id(reply)

        def recipient():
            return json.loads(relay.cli("queue", "show", qid, "--json").stdout)["recipients"][0]

        wait_for(lambda: recipient()["state"] == "deferred", timeout=WAIT, what="a deferral")
        return qid, recipient


class EmptyTrustAnchorTest(unittest.TestCase):
    def test_an_anchor_without_records_is_an_error_at_start(self):
        relay = Relay(deliver=True)
        try:
            anchor = os.path.join(relay.dir, "root.key")
            with open(anchor, "w") as f:
                f.write("; nothing here\n\n")
            with open(relay.config) as f:
                text = f.read()
            with open(relay.config, "w") as f:
                f.write(text.replace("[dns]\n", f'[dns]\ntrust_anchor_file = "{anchor}"\n'))
            r = subprocess.run([DANERELAYD, "--config", relay.config], capture_output=True,
                               timeout=30)
            self.assertEqual(r.returncode, 78, r.stderr)
            self.assertIn(f"trust anchor file {anchor} holds no DS or DNSKEY record",
                          r.stderr.decode())
        finally:
            relay.cleanup()


class DaneCheckTimeoutTest(unittest.TestCase):
    def test_dane_check_returns_when_dns_does_not_answer(self):
        # A forwarder on loopback where nothing answers: every lookup times out.
        relay = Relay(extra_toml='[dns]\nforwarders = ["127.0.0.1@9"]\ntimeout = "1s"\n'
                                 'validation_canary = ""\n')
        try:
            started = time.monotonic()
            r = subprocess.run([os.path.abspath(DANERELAY), "--config", relay.config,
                                "dane-check", "example.net", "--json"],
                               capture_output=True, timeout=60)
            self.assertLess(time.monotonic() - started, 15)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)  # deferred
            report = json.loads(r.stdout)
            self.assertEqual((report["verdict"], report["status"]), ("deferred", "4.4.3"), report)
        finally:
            relay.cleanup()


class ValidationStopsWorkingTest(DeferredMessageCase):
    def test_validation_failure_defers_mandatory_dane_and_shows_in_stats(self):
        tmp = tempfile.mkdtemp(prefix="danerelay-health-")
        port = free_port_on([MX_IP])
        crt, key = self_signed(tmp, "mx.mand.example")
        world = DnsWorld(tmp)
        world.zone("mand.example.").add("@ MX 10 mx").add(f"mx A {MX_IP}") \
            .add(f"_{port}._tcp.mx TLSA {tlsa_3_1_1(crt)}")
        world.zone("canary.example.").add(f"@ 0 A {MX_IP}")  # TTL 0: asked every time
        world.start()
        mx = MxServer(MX_IP, port, crt, key).start()
        metrics_port = free_port()
        # Each lookup gets 5 s, not 1 s: only a frozen NSD may make a check fail, never a slow
        # answer on a loaded machine (a cut-off check or delivery lookup costs another round).
        # The waits below end as soon as their condition holds; their bounds are generous.
        relay = Relay(deliver=True, extra_toml=world.toml() + f"""timeout = "5s"
validation_canary = "canary.example."
health_interval = "1s"
[metrics]
address = "127.0.0.1"
port = {metrics_port}
[dane]
mandatory_domains = ["mand.example"]
[delivery]
port = {port}
[retry]
min_backoff = "1s"
max_backoff = "2s"
""")
        frozen = False

        def stats():
            return json.loads(relay.cli("queue", "stats", "--json").stdout)

        def gauge():
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics",
                                        timeout=10) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith("danerelay_resolver_validation_ok "):
                        return int(line.split()[1])
            return None

        try:
            relay.start()
            wait_for(lambda: stats()["resolver_validation_ok"] is True, timeout=WAIT,
                     what="the first self-check")
            self.assertEqual(gauge(), 1)

            signal_tree(world.proc.pid, signal.SIGSTOP)  # NSD stops answering
            frozen = True
            wait_for(lambda: stats()["resolver_validation_ok"] is False, timeout=WAIT,
                     what="the self-check to fail")
            self.assertIn("DNSSEC VALIDATION IS NOT WORKING", stats()["resolver"])
            self.assertIn("canary.example. A came back failed",
                          relay.cli("queue", "stats").stdout.decode())
            self.assertIn("error: DNSSEC validation is not working: canary.example.", relay.logs())
            self.assertEqual(gauge(), 0)

            qid, recipient = self.deferred_message(relay)
            r = recipient()
            self.assertEqual(r["last_status"], "4.4.3")
            self.assertIn("DNSSEC validation is not working", r["last_reply"])
            self.assertEqual(mx.received_for("user@mand.example"), [])

            signal_tree(world.proc.pid, signal.SIGCONT)
            frozen = False
            wait_for(lambda: "DNSSEC validation works again" in relay.logs(), timeout=WAIT,
                     what="the self-check to pass again")
            # Retries come every second or two anyway; the flush only hurries (and finds
            # nothing to do when a retry is already under way or done).
            relay.cli("queue", "flush", qid, check=False)
            wait_for(lambda: recipient()["state"] == "delivered", timeout=WAIT,
                     what="delivery once validation works")
            attempts = json.loads(relay.cli("queue", "show", qid, "--json").stdout)["attempts"]
            self.assertEqual(attempts[-1]["tls_verdict"], "Verified")
            self.assertEqual(gauge(), 1)
            relay.stop()
        finally:
            if frozen:
                signal_tree(world.proc.pid, signal.SIGCONT)
            relay.cleanup()
            mx.stop()
            world.stop()
            shutil.rmtree(tmp, ignore_errors=True)


class ValidationRecoversTest(DeferredMessageCase):
    def test_recovery_is_seen_soon_and_the_deferred_mail_goes_at_once(self):
        """Issue 21: the check that failed is tried again soon (backoff from 5 s), not only
        after health_interval (here an hour), and the mail deferred only because validation
        did not work is delivered as soon as it works again, not after the retry backoff (here
        an hour too: only the recovery can deliver it within the test)."""
        tmp = tempfile.mkdtemp(prefix="danerelay-health-")
        port = free_port_on([MX_IP])
        crt, key = self_signed(tmp, "mx.mand.example")
        world = DnsWorld(tmp)
        world.zone("mand.example.").add("@ MX 10 mx").add(f"mx A {MX_IP}") \
            .add(f"_{port}._tcp.mx TLSA {tlsa_3_1_1(crt)}")
        world.zone("canary.example.").add(f"@ 0 A {MX_IP}")
        world.start()
        mx = MxServer(MX_IP, port, crt, key).start()
        relay = Relay(deliver=True, extra_toml=world.toml() + f"""timeout = "5s"
validation_canary = "canary.example."
health_interval = "1h"
[dane]
mandatory_domains = ["mand.example"]
[delivery]
port = {port}
[retry]
min_backoff = "1h"
max_backoff = "1h"
""")
        # DNS is down from the start: the daemon's first check fails.
        signal_tree(world.proc.pid, signal.SIGSTOP)
        frozen = True

        def stats():
            return json.loads(relay.cli("queue", "stats", "--json").stdout)

        try:
            relay.start()
            wait_for(lambda: stats()["resolver_validation_ok"] is False, timeout=WAIT,
                     what="the first self-check to fail")
            qid, recipient = self.deferred_message(relay)
            self.assertIn("DNSSEC validation is not working", recipient()["last_reply"])

            signal_tree(world.proc.pid, signal.SIGCONT)
            frozen = False
            resumed = time.monotonic()
            wait_for(lambda: "DNSSEC validation works again" in relay.logs(), timeout=WAIT,
                     what="the self-check to pass again before health_interval")
            seen = time.monotonic() - resumed
            self.assertIs(stats()["resolver_validation_ok"], True)
            # No flush: only the recovery makes the recipient due before its hour is up.
            wait_for(lambda: recipient()["state"] == "delivered", timeout=WAIT,
                     what="delivery right after validation works again")
            print(f"\nDNS back: recovery seen after {seen:.1f} s, mail delivered after "
                  f"{time.monotonic() - resumed:.1f} s", file=sys.stderr)
            self.assertEqual(len(mx.received_for("user@mand.example")), 1)
            attempts = json.loads(relay.cli("queue", "show", qid, "--json").stdout)["attempts"]
            self.assertEqual(attempts[-1]["tls_verdict"], "Verified")
            relay.stop()
        finally:
            if frozen:
                signal_tree(world.proc.pid, signal.SIGCONT)
            relay.cleanup()
            mx.stop()
            world.stop()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
