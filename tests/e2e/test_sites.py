"""End to end: sites. Two recipient domains whose MX records name the same host, in a signed
DNS world, share one site and so one message_rate budget; a domain with an MX host of its own
is another site and is not held back. The site's own connections and messages_per_connection
hold for it alone. The MX servers timestamp every delivery (CountingMx)."""
import time
import unittest

from dnsworld import DnsWorld
from harness import Relay, wait_for
from mx import free_port_on
from test_shaping import CountingMx, ShapingCase
from world_case import WorldCase

SHARED_IP = "127.0.0.45"
OWN_IP = "127.0.0.46"
DEAD_IP = "127.0.0.47"  # nothing listens there: connections are refused
LIVE_IP = "127.0.0.48"


class SitesTest(WorldCase, ShapingCase):
    @classmethod
    def build(cls):
        cls.scratch("danerelay-sites-")
        port = free_port_on([SHARED_IP, OWN_IP, DEAD_IP, LIVE_IP])
        w = cls.world = DnsWorld(cls.tmp)
        w.zone("shared.example.").add(f"mx A {SHARED_IP}")
        w.zone("one.example.").add("@ MX 10 mx.shared.example.")
        w.zone("two.example.").add("@ MX 10 mx.shared.example.")
        w.zone("own.example.").mx(OWN_IP, port=port)
        # Two domains in a provider's site ("hoster": every MX host under .hoster.example, as
        # "google" is for .google.com), one naming an MX host there that does not answer: only
        # that domain becomes a dead destination, not the provider.
        w.zone("hoster.example.").add(f"mx-live A {LIVE_IP}").add(f"mx-dead A {DEAD_IP}")
        w.zone("victim.example.").add("@ MX 10 mx-live.hoster.example.")
        w.zone("attacker.example.").add("@ MX 10 mx-dead.hoster.example.")
        w.start()
        cls.shared = cls.servers["shared"] = CountingMx(SHARED_IP, port).start()
        cls.own = cls.servers["own"] = CountingMx(OWN_IP, port, data_delay=0.3).start()
        cls.live = cls.servers["live"] = CountingMx(LIVE_IP, port).start()
        cls.relay = Relay(deliver=True, trusted=["127.0.0.0/8"], extra_toml=w.toml() + f"""
[delivery]
port = {port}
[shaping.site."mx.shared.example"]
message_rate = "60/min"
connections = 1
messages_per_connection = 3
[shaping.site."mx.own.example"]
connections = 2
[shaping.default]
dead_after = 2
dead_for = "10m"
[shaping.providers]
hoster = [".hoster.example"]
""").start()

    def tearDown(self):
        pass  # the class's world, relay and servers are stopped once, by WorldCase

    def test_two_domains_with_one_mx_share_its_rate_another_site_is_not_held_back(self):
        # Sent as they come, interleaved: turns are booked in the order mail comes up, so both
        # domains take turns.
        self.send([f"u{i}@{d}" for i in range(15) for d in ("one.example", "two.example")] +
                  [f"u{i}@own.example" for i in range(15)])
        wait_for(lambda: self.shared.delivered, timeout=30, what="the first delivery to the site")
        first = self.shared.delivered[0][1]
        wait_for(lambda: len(self.own.recipients()) == 15, timeout=30, what="own.example's 15")
        time.sleep(max(0.0, first + 11 - time.monotonic()))
        times = [t for _, t in self.shared.delivered if t < first + 10]
        rcpts = [r for r, t in self.shared.delivered if t < first + 10]
        print(f"site mx.shared.example: {len(times)} in the first 10 s "
              f"({sum(r.endswith('@one.example') for r in rcpts)} one.example, "
              f"{sum(r.endswith('@two.example') for r in rcpts)} two.example)")
        # One budget for both: at most 11 in 10 s at "60/min" (each domain alone would be
        # allowed as many), and both domains are among them.
        self.assertLessEqual(len(times), 11)
        self.assertGreaterEqual(len(times), 8)
        self.assertTrue(any(r.endswith("@one.example") for r in rcpts))
        self.assertTrue(any(r.endswith("@two.example") for r in rcpts))
        self.assertIn("wait for the message rate of site mx.shared.example (60/min)",
                      self.relay.logs())
        own_done = max(t for _, t in self.own.delivered)
        self.assertLess(own_done - first, 5)  # another site: not paced
        # [shaping.site."mx.shared.example"] connections = 1, messages_per_connection = 3: one
        # session at a time, none with more than 3 messages (each a session of its own at most).
        with self.shared.lock:
            sessions = [len(s["rcpts"]) for s in self.shared.sessions]
        print(f"site mx.shared.example: at most {self.shared.max_open} open at once; messages "
              f"per session {sessions}; own.example: {len(self.own.sessions)} sessions")
        self.assertEqual(self.shared.max_open, 1)
        self.assertLessEqual(max(sessions), 3)
        self.assertIn(3, sessions)  # the cached connection is reused up to the limit
        # mx.own.example's connections = 2, the default 20 elsewhere: two at once, never more.
        self.assertEqual(self.own.max_open, 2)

    def test_a_domain_naming_dead_hosts_under_a_provider_does_not_kill_the_provider(self):
        self.send([f"u{i}@attacker.example" for i in range(3)])
        wait_for(lambda: "domain attacker.example: suspended for 600s" in self.relay.logs(),
                 timeout=30, what="attacker.example a dead destination")
        self.send(["alice@victim.example"])
        wait_for(lambda: "alice@victim.example" in self.live.recipients(), timeout=30,
                 what="victim.example, in the same site, delivered")
        logs = self.relay.logs()
        self.assertNotIn("site hoster: suspended", logs)
        self.assertIn("connection failures in a row", logs)


if __name__ == "__main__":
    unittest.main()
