"""End to end: `danerelay queue suspend --domain D --for T` (or --site S) and `queue resume`.

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

    def test_site_suspension_is_shown_and_resumed(self):
        """A site (the delivery's grouping of MX hosts) is suspended and resumed by name, and
        `queue stats` shows the sites of waiting mail; no delivery needed."""
        site = "mx1.example.net,mx2.example.net"
        r = self.relay.cli("queue", "suspend", "--site", "MX1.Example.NET,mx2.example.net",
                           "--for", "2h", "--reason", "421 4.7.0 try later")
        self.assertIn(f"site {site} suspended until ".encode(), r.stdout)
        # No mail has gone there, and no route or provider is named so: said, but done.
        self.assertIn(b"warning: no mail in the queue has gone or goes to site", r.stderr)
        r = self.relay.cli("queue", "suspend", "--site", "google", "--for", "1m")
        self.assertNotIn(b"warning", r.stderr)  # a provider's site
        self.relay.cli("queue", "resume", "--site", "google")
        route = "route [127.0.0.40]:2525,relay.example.net"
        r = self.relay.cli("queue", "suspend", "--site", route, "--for", "1h")
        self.assertIn(f"site {route} suspended until ".encode(), r.stdout)
        wait_for(lambda: f"site {site}: suspended until " in self.relay.logs(),
                 what="the site's suspension logged")
        stats = self.relay.cli("queue", "stats").stdout.decode()
        self.assertRegex(stats, re.escape(f"site {site}: suspended until ") +
                         r"\S+Z: 421 4\.7\.0 try later \(by \S+")
        self.assertIn(f"site {route}: suspended until ", stats)

        # Mail waiting for its domain has not been tried: its site is not yet known.
        self.relay.cli("queue", "suspend", "--domain", "paused.example", "--for", "2h")
        held = self.send("bob@paused.example")
        wait_for(lambda: "site not yet known" in self.relay.cli("queue", "stats").stdout.decode(),
                 what="the waiting recipient counted without a site")
        stats = self.relay.cli("queue", "stats").stdout.decode()
        self.assertRegex(stats, r"(?m)^sites: queued and deferred recipients by site\n"
                                r" +1  \(site not yet known")
        j = json.loads(self.relay.cli("queue", "stats", "--json").stdout)
        self.assertEqual(sorted((s["kind"], s["name"]) for s in j["suspensions"]),
                         [("domain", "paused.example"), ("site", site), ("site", route)])
        self.assertEqual(j["sites"], [])
        self.assertEqual(j["site_unknown_recipients"], 1)
        self.assertEqual(j["sites_not_shown"], 0)
        self.assertEqual(self.relay.show_json(held)["recipients"][0]["site"], "")

        r = self.relay.cli("queue", "resume", "--site", site.upper())
        self.assertEqual(r.stdout, f"site {site} resumed\n".encode())
        wait_for(lambda: f"site {site}: resumed" in self.relay.logs(), what="resume log")
        r = self.relay.cli("queue", "resume", "--site", site, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"site {site} is not suspended".encode(), r.stderr)
        suspended = json.loads(self.relay.cli("queue", "stats", "--json").stdout)["suspensions"]
        self.assertEqual(sorted(s["name"] for s in suspended), ["paused.example", route])

    def test_bad_site_arguments_are_named(self):
        for args, said in [
                (["--site", "mx1.example.net, mx2.example.net"], b"not a site"),
                (["--site", ""], b"exactly one of --domain and --site"),
                (["--site", "x" * 1001], b"not a site"),
                (["--domain", "a.example", "--site", "google"], b"exactly one of"),
                ([], b"exactly one of --domain and --site")]:
            with self.subTest(args=args[:2]):
                r = self.relay.cli("queue", "suspend", *args, "--for", "1h", check=False)
                self.assertEqual(r.returncode, 64, r.stderr)
                self.assertIn(said, r.stderr)
                r = self.relay.cli("queue", "resume", *args, check=False)
                self.assertEqual(r.returncode, 64, r.stderr)
                self.assertIn(said, r.stderr)
        self.assertNotIn(b"suspended", self.relay.cli("queue", "stats").stdout)

    def test_bad_arguments_are_named(self):
        r = self.relay.cli("queue", "suspend", "--domain", "x.example", "--for", "soon",
                           check=False)
        self.assertEqual(r.returncode, 64)
        self.assertIn(b"--for soon: expected a duration", r.stderr)


if __name__ == "__main__":
    unittest.main()
