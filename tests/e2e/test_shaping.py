"""End to end: [shaping.default] messages_per_connection and connections,
[[shaping.on_reply]] (a throttling reply suspends the recipient domain) and dead destinations
([shaping.default] dead_after: connection failures in a row suspend it, then one message probes).

The MX servers are plain SMTP servers on 127.0.0.x that count their sessions, with the time
each began and ended, and the most that were open at once. Static routes send each domain to
its MX; no DNS. Mail is queued while its domain is suspended (`queue suspend`) and released
with `queue resume`, so that all of it is due at the same moment."""
import re
import smtplib
import threading
import time
import unittest

from harness import Relay, queued_id, wait_for
from mx import ThreadedSmtpServer, free_port_on

MX_A = "127.0.0.43"
MX_B = "127.0.0.44"
MX_C = "127.0.0.45"
THROTTLE = "421 4.7.28 [127.0.0.1] Our system has detected an unusual rate of mail: rate limited"


class CountingMx(ThreadedSmtpServer):
    """Counts SMTP sessions: each one's start and end (time.monotonic()) and the recipients it
    took, and the most sessions open at once. `data_delay` slows each end of data down, so
    deliveries overlap. While `throttle` is set, RCPT is answered with it and the session ends
    (RFC 5321 §3.8: 421 closes); `throttle_once` clears it after the first time."""

    def __init__(self, ip, port, data_delay=0.0, throttle=None, throttle_once=False):
        super().__init__(ip, port, backlog=64)
        self.data_delay, self.throttle, self.throttle_once = data_delay, throttle, throttle_once
        self.lock = threading.Lock()
        self.sessions = []      # {"start", "end", "rcpts"}
        self.delivered = []     # (recipient, time)
        self.throttled_at = []  # times a throttling reply was sent
        self.open = 0
        self.max_open = 0
        self.slow_delay = 0.0  # added to the end of data of mail to "slow..." recipients
        self.in_slow_data = 0

    def recipients(self):
        with self.lock:
            return [r for r, _ in self.delivered]

    def _begin(self):
        with self.lock:
            session = {"start": time.monotonic(), "end": None, "rcpts": []}
            self.sessions.append(session)
            self.open += 1
            self.max_open = max(self.max_open, self.open)
            return session

    def _end(self, session):
        with self.lock:
            if session["end"] is None:
                session["end"] = time.monotonic()
                self.open -= 1

    def _rcpt(self, f, session, line, rcpts):
        with self.lock:
            throttle = self.throttle
            if throttle and self.throttle_once:
                self.throttle = None
            if throttle:
                self.throttled_at.append(time.monotonic())
        if throttle:
            f.write(throttle.encode() + b"\r\n")
            f.flush()
            return False
        rcpts.append(line[8:].decode().strip().strip("<>"))
        f.write(b"250 2.1.5 Ok\r\n")
        return True

    def _data(self, f, session, rcpts):
        f.write(b"354 go ahead\r\n")
        f.flush()
        for _ in range(100000):  # bounded: a message of at most 100000 lines
            chunk = f.readline()
            if not chunk or chunk == b".\r\n":
                break
        slow = any(r.startswith("slow") for r in rcpts)
        with self.lock:
            self.in_slow_data += slow
        time.sleep(self.data_delay + (self.slow_delay if slow else 0))
        with self.lock:
            for r in rcpts:
                self.delivered.append((r, time.monotonic()))
                session["rcpts"].append(r)
        f.write(b"250 2.0.0 Ok: stored\r\n")

    def _session(self, conn):
        session = self._begin()
        conn.settimeout(30)
        f = conn.makefile("rwb")
        try:
            f.write(b"220 mx.test ESMTP\r\n")
            f.flush()
            rcpts = []
            for _ in range(1000):  # bounded: a session of at most 1000 commands
                line = f.readline()
                verb = line[:4].upper()
                if not line or verb == b"QUIT":
                    self._end(session)  # counted closed as the client says goodbye
                    if line:
                        f.write(b"221 2.0.0 Bye\r\n")
                    return
                if verb in (b"EHLO", b"HELO"):
                    f.write(b"250-mx.test\r\n250 8BITMIME\r\n")
                elif verb in (b"MAIL", b"RSET"):
                    rcpts = []
                    f.write(b"250 2.1.0 Ok\r\n")
                elif verb == b"RCPT":
                    if not self._rcpt(f, session, line, rcpts):
                        return
                elif verb == b"DATA":
                    self._data(f, session, rcpts)
                else:
                    f.write(b"250 2.0.0 Ok\r\n")
                f.flush()
        except OSError:
            pass
        finally:
            self._end(session)
            try:
                f.close()
                conn.close()
            except OSError:
                pass


class ShapingCase(unittest.TestCase):
    servers = ()

    def start(self, mx_list, toml):
        self.mx = list(mx_list)
        for m in self.mx:
            m.start()
        self.relay = Relay(deliver=True, trusted=["127.0.0.0/8"], extra_toml=toml).start()

    def tearDown(self):
        try:
            self.relay.close()
        finally:
            for m in self.mx:
                m.stop()

    def send(self, rcpts):
        """One client session, one message per recipient; their queue IDs."""
        ids = []
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30) as c:
            c.ehlo("client.example")
            for rcpt in rcpts:
                c.mail("alice@senders.example")
                c.rcpt(rcpt)
                code, reply = c.data(b"Subject: shaping\r\n\r\nbody\r\n")
                self.assertEqual(code, 250, reply)
                ids.append(queued_id(reply))
        return ids

    def queue_all_then_release(self, domain, rcpts):
        """All of `rcpts` queued while `domain` is suspended, then due at once."""
        self.relay.cli("queue", "suspend", "--domain", domain, "--for", "1h")
        ids = self.send(rcpts)
        self.relay.cli("queue", "resume", "--domain", domain)
        return ids


class MessagesPerConnectionTest(ShapingCase):
    def test_ten_messages_go_over_four_connections_of_at_most_three(self):
        port = free_port_on([MX_A])
        mx = CountingMx(MX_A, port)
        # One connection at a time, so that each message can take the one the last left.
        self.start([mx], f"""
[shaping.default]
messages_per_connection = 3
connections = 1
[routes]
"mpc.example" = "[{MX_A}]:{port}"
""")
        rcpts = [f"user{i}@mpc.example" for i in range(10)]
        self.queue_all_then_release("mpc.example", rcpts)
        wait_for(lambda: len(mx.recipients()) == 10, timeout=60, what="ten messages delivered")
        wait_for(lambda: all(s["end"] for s in mx.sessions), what="the last session closed")
        per_session = [len(s["rcpts"]) for s in mx.sessions]
        print(f"messages per session: {per_session}")
        self.assertEqual(sorted(mx.recipients()), sorted(rcpts))
        self.assertEqual(per_session, [3, 3, 3, 1])


class ConnectionsTest(ShapingCase):
    def test_never_more_than_two_sessions_to_one_domain(self):
        port = free_port_on([MX_A])
        mx = CountingMx(MX_A, port, data_delay=0.3)
        self.start([mx], f"""
[shaping.default]
connections = 2
[routes]
"two.example" = "[{MX_A}]:{port}"
""")
        rcpts = [f"user{i}@two.example" for i in range(20)]
        self.queue_all_then_release("two.example", rcpts)
        wait_for(lambda: len(mx.recipients()) == 20, timeout=90, what="twenty messages delivered")
        print(f"sessions: {len(mx.sessions)}, most open at once: {mx.max_open}")
        self.assertEqual(mx.max_open, 2)  # the limit, and reached (the check can fail)


class OnReplyTest(ShapingCase):
    SUSPEND = 20

    def start_throttled(self, suspend):
        self.port_a, self.port_b = free_port_on([MX_A]), free_port_on([MX_B])
        self.mx_a = CountingMx(MX_A, self.port_a, throttle=THROTTLE, throttle_once=True)
        self.mx_b = CountingMx(MX_B, self.port_b)
        # Deferred mail is due again a second later: only the suspension holds it back.
        self.start([self.mx_a, self.mx_b], f"""
[retry]
min_backoff = "1s"
[[shaping.on_reply]]
match = "^421 4\\\\.7\\\\.28 .*rate limited"
suspend = "{suspend}"
[routes]
"a.example" = "[{MX_A}]:{self.port_a}"
"b.example" = "[{MX_B}]:{self.port_b}"
""")

    def stats(self):
        return self.relay.cli("queue", "stats").stdout.decode()

    def site_a(self):
        """a.example is routed: its site is its next hop."""
        return f"route [{MX_A}]:{self.port_a}"

    def test_throttled_site_waits_other_site_goes_then_it_is_delivered(self):
        self.start_throttled(f"{self.SUSPEND}s")
        first = self.send(["one@a.example"])[0]
        wait_for(lambda: self.mx_a.throttled_at, what="the throttling reply")
        t0 = self.mx_a.throttled_at[0]
        site = re.escape(self.site_a())
        wait_for(lambda: f"site {self.site_a()}: suspended until" in self.stats(),
                 what="the suspension in queue stats")
        self.assertRegex(self.stats(), f"site {site}: suspended until \\S+Z: \\S+ said: "
                                       r"421 4\.7\.28 .*rate limited \(\[\[shaping\.on_reply\]\] "
                                       r"match .*\) \(by danerelayd, on_reply\)")
        waiting = self.send(["two@a.example"])[0]
        self.send(["carol@b.example"])
        wait_for(lambda: "carol@b.example" in self.mx_b.recipients(), what="b.example delivered")
        time.sleep(3)  # three backoffs of the throttled message: attempts that must not happen
        self.assertLess(time.monotonic(), t0 + self.SUSPEND - 1, "the test itself was too slow")
        rcpt = self.relay.show_json(waiting)["recipients"][0]
        self.assertEqual((rcpt["state"], rcpt["attempts"]), ("queued", 0))  # waits, no attempt
        self.assertEqual(self.relay.show_json(first)["recipients"][0]["attempts"], 1)
        self.assertEqual(len(self.mx_a.sessions), 1)
        self.assertIn("danerelay", self.relay.logs())

        wait_for(lambda: len(self.mx_a.recipients()) == 2, timeout=self.SUSPEND + 20,
                 what="a.example delivered after the suspension")
        starts = [s["start"] - t0 for s in self.mx_a.sessions]
        print(f"a.example sessions began at {[round(s, 2) for s in starts]}s after the 421")
        self.assertGreaterEqual(min(starts[1:]), self.SUSPEND - 1)
        self.assertLess(max(starts), self.SUSPEND + 10)
        wait_for(lambda: f"site {self.site_a()}: suspension ended" in self.relay.logs(),
                 what="the end logged")
        # The attempts name the site they went to.
        self.assertEqual(self.relay.show_json(first)["recipients"][0]["site"], self.site_a())

    def test_a_delivery_under_way_finishes(self):
        self.start_throttled(f"{self.SUSPEND}s")
        self.mx_a.throttle, self.mx_a.slow_delay = None, 3.0
        slow = self.send(["slow@a.example"])[0]
        wait_for(lambda: self.mx_a.in_slow_data, what="the slow message in its data")
        self.mx_a.throttle = THROTTLE
        self.send(["two@a.example"])
        wait_for(lambda: self.mx_a.throttled_at, what="the throttling reply")
        wait_for(lambda: "slow@a.example" in self.mx_a.recipients(), what="the slow one delivered")
        wait_for(lambda: self.relay.show_json(slow)["recipients"][0]["state"] == "delivered",
                 what="the slow one recorded as delivered")
        self.assertIn(f"site {self.site_a()}: suspended until", self.stats())

    def test_operator_resume_lifts_it(self):
        self.start_throttled("1h")
        self.send(["one@a.example"])
        wait_for(lambda: f"site {self.site_a()}: suspended until" in self.stats(),
                 what="the suspension in queue stats")
        self.relay.cli("queue", "resume", "--site", self.site_a())
        wait_for(lambda: "one@a.example" in self.mx_a.recipients(), timeout=10,
                 what="delivered on resume")
        self.assertNotIn("suspended", self.stats())


class LowerOnReplyTest(ShapingCase):
    """A rule with connections instead of suspend: "too many connections" lowers the site's
    limit for a while; mail still goes, one connection at a time."""

    def test_too_many_connections_lowers_the_sites_limit_to_one(self):
        port = free_port_on([MX_A])
        mx = CountingMx(MX_A, port, data_delay=0.3,
                        throttle="421 4.7.0 Too many concurrent SMTP connections",
                        throttle_once=True)
        self.start([mx], f"""
[retry]
min_backoff = "1s"
[[shaping.on_reply]]
match = "too many concurrent smtp connections"
connections = 1
for = "10m"
[routes]
"a.example" = "[{MX_A}]:{port}"
""")
        self.send(["first@a.example"])
        wait_for(lambda: mx.throttled_at, what="the 421")
        wait_for(lambda: "at most 1 connections for 600s" in self.relay.logs(),
                 what="the lower limit logged")
        with mx.lock:
            mx.max_open = mx.open
        self.send([f"user{i}@a.example" for i in range(8)])
        wait_for(lambda: len(mx.recipients()) == 9, timeout=60, what="all nine delivered")
        print(f"after the 421: at most {mx.max_open} sessions at once, {len(mx.sessions)} in all")
        self.assertEqual(mx.max_open, 1)  # default 20; 0.3 s each would overlap without it
        self.assertNotIn("suspended", self.relay.cli("queue", "stats").stdout.decode())


class DeadDestinationTest(ShapingCase):
    DEAD_FOR = 10  # long enough that the checks before the probe finish first, under ASan too

    def attempts(self, ids):
        return sum(self.relay.show_json(i)["recipients"][0]["attempts"] for i in ids)

    def test_closed_port_three_failures_then_waiting_then_one_probe_at_a_time(self):
        port = free_port_on([MX_C])  # nothing listens there yet: connections are refused
        self.start([], f"""
[shaping.default]
connections = 1
dead_after = 3
dead_for = "{self.DEAD_FOR}s"
[retry]
min_backoff = "1s"
[routes]
"dead.example" = "[{MX_C}]:{port}"
""")
        rcpts = [f"user{i}@dead.example" for i in range(6)]
        ids = self.queue_all_then_release("dead.example", rcpts)
        stats = lambda: self.relay.cli("queue", "stats").stdout.decode()
        wait_for(lambda: "(by danerelayd, dead)" in stats(), what="the dead destination")
        site = re.escape(f"route [{MX_C}]:{port}")
        self.assertRegex(stats(), f"site {site}: suspended until \\S+Z: 3 connection "
                                  r"failures in a row; the last: connect to .*refused")
        self.assertEqual(self.attempts(ids), 3)  # the other three waited without connecting
        time.sleep(1.5)  # a backoff of the failed ones: they wait too
        self.assertEqual(self.attempts(ids), 3)
        waiting = [self.relay.show_json(i)["recipients"][0] for i in ids]
        self.assertEqual(sum(r["state"] == "queued" and r["attempts"] == 0 for r in waiting), 3)

        # The suspension ends: one message probes, fails, and the domain is suspended again.
        probes = lambda: self.relay.logs().count(f"suspended for {self.DEAD_FOR}s: probing with")
        wait_for(lambda: probes() == 1, timeout=self.DEAD_FOR + 10, what="the first probe")
        wait_for(lambda: self.attempts(ids) == 4, what="the probe's outcome")
        mx = CountingMx(MX_C, port)
        self.mx.append(mx.start())
        time.sleep(1)
        self.assertEqual(self.attempts(ids), 4)
        self.assertEqual(mx.sessions, [])

        # The next probe finds a server: the rest goes at once, one attempt each.
        wait_for(lambda: len(mx.recipients()) == 6, timeout=self.DEAD_FOR + 20,
                 what="all delivered after a probe got through")
        self.assertEqual(probes(), 2)
        self.assertIn(f"site route [{MX_C}]:{port}: answers again", self.relay.logs())
        self.assertEqual(self.attempts(ids), 3 + 1 + 6)
        self.assertNotIn("suspended", stats())


if __name__ == "__main__":
    unittest.main()
