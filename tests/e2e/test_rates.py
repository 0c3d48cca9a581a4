"""End to end: [shaping] message_rate. 200 messages queued for one domain under "60/min" are
paced: at most 61 reach its MX in the first minute, over several connections, and the mail
waiting for its turn is neither attempted nor deferred. Another domain keeps its own pace.

The MX servers count and timestamp every delivery (CountingMx from test_shaping)."""
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
        self.assertIn(f"wait for the message rate of site route [{MX_A}]:{port_a} (60/min) until",
                      self.relay.logs())
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


if __name__ == "__main__":
    unittest.main()
