"""End to end: `danerelay queue suspend --domain D --for T` and `queue resume`.

Mail to a suspended domain waits without an attempt (not deferred), the other domain is
delivered, the suspension survives a restart of the daemon, and resume delivers at once.
Static routes send both domains to one aiosmtpd MX on 127.0.0.x; no DNS."""
import json
import re
import smtplib
import time
import unittest
import urllib.request

from harness import Relay, free_port, queued_id, wait_for
from mx import MxServer, free_port_on

MX = "127.0.0.40"


class SuspendTest(unittest.TestCase):
    def setUp(self):
        self.port = free_port_on([MX])
        self.mx = MxServer(MX, self.port).start()
        self.metrics_port = free_port()
        self.relay = Relay(deliver=True, trusted=["127.0.0.0/8"], extra_toml=f"""
[metrics]
address = "127.0.0.1"
port = {self.metrics_port}
[routes]
"paused.example" = "[{MX}]:{self.port}"
"open.example" = "[{MX}]:{self.port}"
""").start()

    def tearDown(self):
        try:
            self.relay.close()
        finally:
            self.mx.stop()

    def send(self, rcpt):
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30) as c:
            c.ehlo("client.example")
            c.mail("alice@senders.example")
            c.rcpt(rcpt)
            code, reply = c.data(b"Subject: suspended?\r\n\r\nbody\r\n")
            self.assertEqual(code, 250, reply)
            return queued_id(reply)

    def delivered_to(self):
        return [r for m in self.mx.recorder.messages for r in m["to"]]

    def metrics(self):
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        return urllib.request.urlopen(url, timeout=10).read().decode()

    def test_suspended_domain_waits_survives_restart_and_resume_delivers(self):
        r = self.relay.cli("queue", "suspend", "--domain", "paused.example", "--for", "2h",
                           "--reason", "provider maintenance")
        self.assertIn(b"domain paused.example suspended until ", r.stdout)
        wait_for(lambda: "domain paused.example: suspended until " in self.relay.logs(),
                 what="the suspension logged")
        self.assertIn('danerelay_domain_suspended{domain="paused.example"} 1', self.metrics())
        held = self.send("bob@paused.example")
        self.send("carol@open.example")
        wait_for(lambda: "carol@open.example" in self.delivered_to(), what="open.example delivered")
        time.sleep(2)  # ten scheduler ticks: time enough for an attempt that must not happen
        rcpt = self.relay.show_json(held)["recipients"][0]
        self.assertEqual(rcpt["state"], "queued")  # waiting, not deferred
        self.assertEqual(rcpt["attempts"], 0, rcpt)
        self.assertEqual(self.relay.show_json(held).get("attempts", []), [])
        self.assertNotIn("bob@paused.example", self.delivered_to())
        stats = self.relay.cli("queue", "stats").stdout.decode()
        self.assertRegex(stats, r"domain paused\.example: suspended until \S+Z: "
                                r"provider maintenance \(by \S+")
        self.assertEqual(json.loads(self.relay.cli("queue", "stats", "--json").stdout)
                         ["suspensions"][0]["name"], "paused.example")

        self.relay.stop()
        self.relay.start()
        time.sleep(2)
        self.assertNotIn("bob@paused.example", self.delivered_to())
        self.assertEqual(self.relay.show_json(held)["recipients"][0]["attempts"], 0)
        self.assertIn("paused.example", self.relay.cli("queue", "stats").stdout.decode())

        resumed_at = time.monotonic()
        self.relay.cli("queue", "resume", "--domain", "paused.example")
        wait_for(lambda: "bob@paused.example" in self.delivered_to(), what="delivered on resume")
        took = time.monotonic() - resumed_at
        print(f"delivered {took:.2f}s after resume")
        self.assertLess(took, 5)
        wait_for(lambda: "domain paused.example: resumed" in self.relay.logs(), what="resume log")
        self.assertNotIn("danerelay_domain_suspended{", self.metrics())
        r = self.relay.cli("queue", "resume", "--domain", "paused.example", check=False)
        self.assertEqual(r.returncode, 1)

    def test_bad_arguments_are_named(self):
        r = self.relay.cli("queue", "suspend", "--domain", "x.example", "--for", "soon",
                           check=False)
        self.assertEqual(r.returncode, 64)
        self.assertIn(b"--for soon: expected a duration", r.stderr)


if __name__ == "__main__":
    unittest.main()
