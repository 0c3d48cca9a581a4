"""End to end: [shaping] message_rate. 200 messages queued for one domain under "60/min" are
paced: at most 61 reach its MX in the first minute, over several connections, and the mail
waiting for its turn is neither attempted nor deferred. Another domain keeps its own pace.
connection_rate paces new connections to a site the same way. queue stats shows the budgets
danerelayd holds.

The MX servers count and timestamp every delivery (CountingMx from test_shaping)."""
import json
import re
import time
import unittest

from harness import wait_for
from mx import free_port_on
from test_shaping import MX_A, MX_B, CountingMx, ShapingCase


class MessageRateTest(ShapingCase):
    def test_sixty_per_minute_lets_at_most_sixty_one_through_in_the_first_minute(self):
        port_a, port_b = free_port_on([MX_A]), free_port_on([MX_B])
        mx_a, mx_b = CountingMx(MX_A, port_a), CountingMx(MX_B, port_b)
        self.start([mx_a, mx_b], f"""
[shaping.default]
message_rate = "60/min"
messages_per_connection = 10
[shaping.domain."b.example"]
message_rate = "600/min"
[routes]
"a.example" = "[{MX_A}]:{port_a}"
"b.example" = "[{MX_B}]:{port_b}"
""")
        self.relay.cli("queue", "suspend", "--domain", "a.example", "--for", "1h")
        self.relay.cli("queue", "suspend", "--domain", "b.example", "--for", "1h")
        ids = self.send([f"user{i}@a.example" for i in range(200)] +
                        [f"user{i}@b.example" for i in range(30)])
        self.relay.cli("queue", "resume", "--domain", "a.example")
        self.relay.cli("queue", "resume", "--domain", "b.example")
        wait_for(lambda: mx_a.delivered, timeout=30, what="the first delivery to a.example")
        first = mx_a.delivered[0][1]
        # b.example has its own budget (600/min): its 30 are through in about 3 s, while
        # a.example is still at its first few.
        wait_for(lambda: len(mx_b.recipients()) == 30, timeout=30, what="b.example's 30")
        b_done = max(t for _, t in mx_b.delivered)
        self.assertLess(b_done - first, 10)
        # Mail waiting for its turn: not attempted, not deferred.
        waiting = [m for m in self.relay.queue_json()
                   if any(r["address"].endswith("@a.example") for r in m["recipients"])]
        self.assertGreater(len(waiting), 100)
        self.assertTrue(all(r["attempts"] == 0 for m in waiting for r in m["recipients"]),
                        waiting[:2])
        # a.example is routed: its site is its next hop.
        site = f"route [{MX_A}]:{port_a}"
        self.assertIn(f"wait for the message rate of site {site} (60/min) until",
                      self.relay.logs())
        # queue stats shows the budget danerelayd holds: the turns booked for the waiting mail.
        def budget():
            shaping = json.loads(self.relay.cli("queue", "stats", "--json").stdout)["shaping"]
            rate = ((shaping or {}).get("sites", {}).get(site) or {}).get("message_rate")
            return rate if rate and rate["turns_booked"] > 100 else None
        wait_for(budget, timeout=10, what="the site's message_rate budget in queue stats")
        self.assertEqual(budget()["rate"], "60/min")
        stats = self.relay.cli("queue", "stats").stdout.decode()
        print(stats[stats.find("sites:"):])
        self.assertRegex(stats, rf"site {re.escape(site)}: .*message_rate 60/min: next free "
                                r"\S+Z, \d+ waiting for booked turns")
        time.sleep(max(0.0, first + 65 - time.monotonic()))
        in_first_minute = [t for _, t in mx_a.delivered if t < first + 60]
        print(f"a.example: {len(in_first_minute)} in the first minute, "
              f"{len(mx_a.sessions)} sessions; b.example: 30 in {b_done - first:.1f} s")
        self.assertLessEqual(len(in_first_minute), 61)
        self.assertGreaterEqual(len(in_first_minute), 50)  # paced, not stalled
        self.assertGreater(len(mx_a.sessions), 1)
        # Evenly: no two deliveries to a.example much closer than half a second apart.
        times = sorted(t for _, t in mx_a.delivered)
        gaps = [b - a for a, b in zip(times, times[1:])]
        self.assertGreater(min(gaps), 0.25, gaps[:10])

    def test_a_connection_rate_paces_new_connections_not_messages_over_a_kept_one(self):
        # messages_per_connection = 1: every message needs a new connection, so "30/min" (one
        # every 2 s) paces them; c.example, another site, has none.
        port_a, port_b = free_port_on([MX_A]), free_port_on([MX_B])
        mx_a, mx_b = CountingMx(MX_A, port_a), CountingMx(MX_B, port_b)
        self.start([mx_a, mx_b], f"""
[shaping.default]
messages_per_connection = 1
[shaping.site."route [{MX_A}]:{port_a}"]
connection_rate = "30/min"
[routes]
"a.example" = "[{MX_A}]:{port_a}"
"c.example" = "[{MX_B}]:{port_b}"
""")
        self.send([f"user{i}@a.example" for i in range(12)] +
                  [f"user{i}@c.example" for i in range(12)])
        wait_for(lambda: mx_a.sessions, timeout=30, what="the first session at a.example's MX")
        first = mx_a.sessions[0]["start"]
        wait_for(lambda: len(mx_b.recipients()) == 12, timeout=30, what="c.example's 12")
        time.sleep(max(0.0, first + 10.5 - time.monotonic()))
        with mx_a.lock:
            starts = sorted(s["start"] for s in mx_a.sessions)
        in_ten = [t for t in starts if t < first + 10]
        print(f"a.example: {len(in_ten)} sessions in the first 10 s at \"30/min\"; "
              f"c.example: {len(mx_b.sessions)} sessions, done "
              f"{max(t for _, t in mx_b.delivered) - first:.1f} s after a's first")
        self.assertLessEqual(len(in_ten), 6)   # 10 s / 2 s + 1
        self.assertGreaterEqual(len(in_ten), 4)  # paced, not stalled
        self.assertEqual(len(mx_b.sessions), 12)
        self.assertLess(max(t for _, t in mx_b.delivered) - first, 8)
        self.assertIn(f"wait for the connection rate of site route [{MX_A}]:{port_a} (30/min)",
                      self.relay.logs())
        waiting = [m for m in self.relay.queue_json()
                   if any(r["address"].endswith("@a.example") for r in m["recipients"])]
        self.assertTrue(waiting)
        self.assertTrue(all(r["attempts"] == 0 for m in waiting for r in m["recipients"]),
                        waiting[:2])


if __name__ == "__main__":
    unittest.main()
