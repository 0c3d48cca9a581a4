"""End to end: the operator's queue commands against a running daemon (and a stopped one).

Static routes to IP literals send each test domain to an aiosmtpd MX on 127.0.0.x, or to an
address where nothing listens yet (the destination is "down"); no DNS is involved."""
import email
import email.policy
import json
import re
import smtplib
import time
import unittest
import urllib.request

from harness import Relay, free_port, queued_id, wait_for
from mx import MxServer, free_port_on

A, DOWN1, DOWN2, DEAD = "127.0.0.30", "127.0.0.31", "127.0.0.32", "127.0.0.33"
SENDER = "alice@senders.example"


class QueueAdminTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port_on([A, DOWN1, DOWN2, DEAD])
        cls.mx = MxServer(A, cls.port).start()
        cls.late = []
        routes = "\n".join(f'"{d}" = "[{ip}]:{cls.port}"' for d, ip in (
            ("up.example", A), ("senders.example", A), ("down1.example", DOWN1),
            ("down2.example", DOWN2), ("dead.example", DEAD)))
        cls.relay = Relay(deliver=True, extra_toml=f"""
[delivery]
connect_timeout = "2s"
[retry]
min_backoff = "1h"
[routes]
{routes}
""").start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.relay.close()
        finally:
            cls.mx.stop()
            for s in cls.late:
                s.stop()

    def send(self, rcpt, subject):
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30) as c:
            c.ehlo("admin.example")
            c.mail(SENDER)
            c.rcpt(rcpt)
            code, reply = c.data(f"Subject: {subject}\r\n\r\nbody\r\n".encode())
            self.assertEqual(code, 250, reply)
            return queued_id(reply)

    def state(self, qid):
        return json.loads(self.relay.cli("queue", "show", qid, "--json").stdout)["recipients"][0]

    def admin(self, *args):
        r = self.relay.cli("queue", *args, "--json")
        return json.loads(r.stdout)

    def deferred(self, qid):
        wait_for(lambda: self.state(qid)["state"] == "deferred", what=f"{qid} deferred")

    def test_logs_tell_each_message_s_story(self):
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30) as c:
            c.ehlo("admin.example")
            c.mail(SENDER)
            c.rcpt("logged@up.example")
            code, reply = c.data(b"Subject: logged\r\nMessage-ID: <story-1@senders.example>\r\n"
                                 b"\r\nbody\r\n")
            self.assertEqual(code, 250, reply)
            qid = queued_id(reply)
        wait_for(lambda: f"{qid}: removed" in self.relay.logs(), what="the removed line")
        logs = self.relay.logs()
        self.assertIn(f"{qid}: message-id=<story-1@senders.example>", logs)
        sent = re.search(rf"{qid}: to=<logged@up.example>, relay=[^,\[]+\[{A}\]:{self.port}, "
                         r"delay=([0-9.]+), delays=([0-9.]+)/([0-9.]+)/([0-9.]+)/([0-9.]+), "
                         r"dsn=2.0.0, status=sent", logs)
        self.assertIsNotNone(sent, logs[-3000:])
        delay, *parts = (float(x) for x in sent.groups())
        self.assertLessEqual(sum(parts), delay + 0.05)  # each rounded to 0.01
        # The order of the story: accepted, sent, removed.
        self.assertLess(logs.index(f"{qid}: message-id="), logs.index(f"{qid}: to=<logged"))
        self.assertLess(logs.index(f"{qid}: to=<logged"), logs.index(f"{qid}: removed"))

    def test_operator_actions_are_logged(self):
        qid = self.send("user@dead.example", "operator")
        self.deferred(qid)
        # The daemon logs them (test_logs.py has the details), the command line does not.
        r = self.relay.cli("queue", "hold", qid)
        self.assertEqual(r.stderr, b"")
        wait_for(lambda: re.search(rf"danerelay/qmgr\[\d+\]: {qid}: held by \S+ \(queue hold\)",
                                   self.relay.logs()), what="the hold line")
        self.relay.cli("queue", "delete", qid)
        wait_for(lambda: f"{qid}: removed by " in self.relay.logs(), what="the delete line")

    def test_list_takes_the_filters_of_the_actions(self):
        a = self.send("one@dead.example", "list a")
        b = self.send("two@dead.example", "list b")
        self.deferred(a)
        self.deferred(b)
        only = self.relay.cli("queue", "list", "--json", "--recipient", "two@dead.example")
        got = [json.loads(line) for line in only.stdout.decode().splitlines()]
        self.assertEqual([m["id"] for m in got], [b])
        by_id = self.relay.cli("queue", "list", "--json", a, "--state", "deferred")
        self.assertEqual([json.loads(x)["id"] for x in by_id.stdout.decode().splitlines()], [a])
        none = self.relay.cli("queue", "list", "--json", a, "--state", "held")
        self.assertEqual(none.stdout, b"")
        other = self.relay.cli("queue", "list", "--json", "--sender", "<>", a)
        self.assertEqual(other.stdout, b"")
        # The text list: the reason once, then each recipient with attempts and next retry.
        text = self.relay.cli("queue", "list", a).stdout.decode()
        self.assertRegex(text, r"one@dead\.example \[deferred, 1 attempt, next [A-Z][a-z]{2} ")
        self.assertEqual(text.count("Connection refused"), 1)

    def test_command_line_mistakes_are_named(self):
        r = self.relay.cli("queue", "hold", "NOPE", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"NOPE: no such message in the queue, or nothing in it to hold", r.stderr)
        r = self.relay.cli("queue", "frob", check=False)
        self.assertEqual(r.returncode, 64)
        self.assertIn(b"unknown command 'queue frob'; the commands are: list, show", r.stderr)
        r = self.relay.cli("queue", "hold", "--state", "bogus", check=False)
        self.assertEqual(r.returncode, 64)
        self.assertIn(b"the states are: queued, attempting, delivered, deferred, failed, expired, "
                      b"held\n", r.stderr)

    def test_hold_stats_release(self):
        qid = self.send("user@down1.example", "hold me")
        self.deferred(qid)
        self.assertEqual(self.state(qid)["last_status"], "4.4.1")
        held = self.admin("hold", qid)
        self.assertEqual((held["action"], held["messages"], held["recipients"]), ("hold", [qid], 1))
        self.assertEqual(self.state(qid)["state"], "held")
        stats = self.admin("stats")
        self.assertGreaterEqual(stats["recipients_by_state"]["held"], 1)
        top = {d["domain"]: d for d in stats["top_destinations"]}
        self.assertEqual(top["down1.example"]["recipients"], 1)
        # Like qshape: the recipient's message is under 5 minutes old.
        self.assertEqual(top["down1.example"]["age_buckets"], [1] + [0] * 9)
        self.assertEqual(stats["age_bucket_minutes"], [5, 10, 20, 40, 80, 160, 320, 640, 1280])
        text = self.relay.cli("queue", "stats").stdout.decode()
        self.assertRegex(text, r"\n  down1\.example +1 +1 +0 +0")
        # The destination comes back; a held message still waits for the operator.
        server = MxServer(DOWN1, self.port).start()
        self.late.append(server)
        time.sleep(1.5)
        self.assertEqual(self.state(qid)["state"], "held")
        released = self.admin("release", qid)
        self.assertEqual(released["messages"], [qid])
        wait_for(lambda: self.state(qid)["state"] == "delivered", what="delivery after release")
        self.assertEqual(len(server.received_for("user@down1.example")), 1)

    def test_flush_by_domain(self):
        qid = self.send("user@down2.example", "flush me")
        self.deferred(qid)
        server = MxServer(DOWN2, self.port).start()
        self.late.append(server)
        # Without a flush the next attempt is an hour away.
        time.sleep(1.5)
        self.assertEqual(self.state(qid)["state"], "deferred")
        flushed = self.admin("flush", "--domain", "down2.example")
        self.assertIn(qid, flushed["messages"])
        wait_for(lambda: self.state(qid)["state"] == "delivered", timeout=5,
                 what="delivery within a second or so of the flush")
        self.assertEqual(len(server.received_for("user@down2.example")), 1)

    def test_bounce_returns_mail_to_the_sender_now(self):
        qid = self.send("user@dead.example", "give up")
        self.deferred(qid)
        bounced = self.admin("bounce", qid)
        self.assertEqual(bounced["recipients"], 1)
        self.assertEqual(self.state(qid)["state"], "failed")

        def notice():
            for got in self.mx.received_for(SENDER):
                msg = email.message_from_bytes(got["content"], policy=email.policy.default)
                blocks = msg.get_payload()[1].get_payload()
                if blocks[0]["X-Danerelay-Queue-ID"] == qid:
                    return blocks
            return None

        wait_for(lambda: notice() is not None, what="the bounce at the sender's MX")
        blocks = notice()
        self.assertEqual(blocks[1]["Action"], "failed")
        self.assertEqual(blocks[1]["Status"], "5.0.0")
        self.assertIn("mail administrator", blocks[1]["Diagnostic-Code"])

    def test_delete_needs_a_selection_and_removes_messages(self):
        nothing = self.relay.cli("queue", "delete", check=False)
        self.assertEqual(nothing.returncode, 1)
        self.assertIn(b"name queue IDs or a filter", nothing.stderr)
        qid = self.send("other@dead.example", "delete me")
        self.deferred(qid)
        deleted = self.admin("delete", "--sender", SENDER, "--state", "deferred",
                             "--domain", "dead.example")
        self.assertIn(qid, deleted["messages"])
        listed = [m["id"] for m in self.relay.queue_json()]
        self.assertNotIn(qid, listed)
        missing = self.relay.cli("queue", "show", qid, check=False)
        self.assertEqual(missing.returncode, 1)
        bad = self.relay.cli("queue", "hold", "--older-than", "soon", check=False)
        self.assertEqual(bad.returncode, 64)  # a malformed duration is refused, nothing is held
        self.assertIn(b"--older-than soon", bad.stderr)


class ConcurrencyTest(unittest.TestCase):
    """One MX, one routed domain, several messages; `limit` is max_per_destination."""

    def deliver(self, ip, domain, count, limit, data_delay=0.0):
        port = free_port_on([ip])
        mx = MxServer(ip, port, data_delay=data_delay).start()
        relay = Relay(deliver=True, extra_toml=f"""
[delivery]
max_per_destination = {limit}
[routes]
"{domain}" = "[{ip}]:{port}"
""").start()
        try:
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as c:
                c.ehlo("admin.example")
                for i in range(count):
                    c.mail(SENDER)
                    c.rcpt(f"user{i}@{domain}")
                    code, reply = c.data(b"Subject: many\r\n\r\nx\r\n")
                    self.assertEqual(code, 250, reply)
            wait_for(lambda: len(mx.recorder.messages) == count, timeout=30,
                     what=f"{count} deliveries")
            logs = relay.logs()
            relay.stop()
            return mx.recorder, logs
        finally:
            relay.cleanup()
            mx.stop()

    def test_per_destination_limit(self):
        recorder, _ = self.deliver("127.0.0.34", "slow.example", 6, limit=2, data_delay=0.6)
        self.assertEqual(recorder.max_in_data, 2)  # parallel, but never more than two

    def test_connection_reuse(self):
        recorder, logs = self.deliver("127.0.0.35", "reuse.example", 4, limit=1)
        sessions = {m["session"] for m in recorder.messages}
        print(f"4 messages over {len(sessions)} connection(s)")
        self.assertLess(len(sessions), 4)  # at least one message rode an existing connection
        self.assertIn("reused the cached connection to", logs)


class InFlightTest(unittest.TestCase):
    """The operator deletes or bounces a message while it is in delivery, with max_parallel = 1:
    the outcome that comes back is dropped (logged), and the only delivery slot is free again."""

    MX = "127.0.0.36"

    def setUp(self):
        self.port = free_port_on([self.MX])
        # Each DATA takes 3 s: time enough to act on the message while it is in delivery.
        self.mx = MxServer(self.MX, self.port, data_delay=3.0).start()
        self.metrics_port = free_port()
        self.relay = Relay(deliver=True, extra_toml=f"""
[metrics]
address = "127.0.0.1"
port = {self.metrics_port}
[delivery]
max_parallel = 1
[retry]
min_backoff = "1h"
[routes]
"slow.example" = "[{self.MX}]:{self.port}"
"senders.example" = "[{self.MX}]:{self.port}"
""").start()

    def tearDown(self):
        try:
            self.relay.stop()
        finally:
            self.relay.cleanup()
            self.mx.stop()

    def send(self, rcpt):
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30) as c:
            c.ehlo("admin.example")
            c.mail(SENDER)
            c.rcpt(rcpt)
            code, reply = c.data(b"Subject: in flight\r\n\r\nbody\r\n")
            self.assertEqual(code, 250, reply)
            return queued_id(reply)

    def in_delivery(self, qid):
        wait_for(lambda: self.mx.recorder.in_data == 1, what="the delivery to reach DATA")
        self.assertEqual(self.relay.show_json(qid)["recipients"][0]["state"], "attempting")

    def metrics(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=10) as r:
            return r.read().decode()

    def next_message_is_delivered(self, first):
        later = self.send("later@slow.example")
        # On the unfixed daemon the outcome of `first` was retried every 30 s for ever and held
        # the only slot: `later` never went out.
        wait_for(lambda: self.mx.received_for("later@slow.example"), timeout=30,
                 what="the next message's delivery")
        wait_for(lambda: self.relay.show_json(later)["recipients"][0]["state"] == "delivered",
                 what="the next message's outcome")
        logs = self.relay.logs()
        self.assertRegex(logs, rf"{first}: .*outcome.* dropped")
        self.assertNotIn(f"{first}: recording the delivery outcome failed", logs)

    def test_delete_during_delivery_frees_the_slot(self):
        qid = self.send("first@slow.example")
        self.in_delivery(qid)
        deleted = json.loads(self.relay.cli("queue", "delete", qid, "--json").stdout)
        self.assertEqual(deleted["messages"], [qid])
        self.next_message_is_delivered(qid)
        self.assertIn("deleted", self.relay.logs())
        self.assertIn('danerelay_outcomes_not_recorded_total{reason="deleted"} 1', self.metrics())
        self.assertEqual(self.relay.cli("queue", "show", qid, check=False).returncode, 1)

    def test_bounce_during_delivery_frees_the_slot(self):
        qid = self.send("first@slow.example")
        self.in_delivery(qid)
        bounced = json.loads(self.relay.cli("queue", "bounce", qid, "--json").stdout)
        self.assertEqual(bounced["recipients"], 1)
        self.next_message_is_delivered(qid)
        # The operator's decision stands: the late "delivered" does not overwrite it.
        self.assertEqual(self.relay.show_json(qid)["recipients"][0]["state"], "failed")
        self.assertIn('danerelay_outcomes_not_recorded_total{reason="operator"} 1', self.metrics())
        wait_for(lambda: self.mx.received_for(SENDER), timeout=30, what="the bounce")
        self.assertEqual(len(self.mx.received_for(SENDER)), 1)  # one bounce, not two


class HeldMailExpiresTest(unittest.TestCase):
    def test_held_mail_expires_and_bounces(self):
        port = free_port_on([A, DEAD])
        mx = MxServer(A, port).start()
        relay = Relay(deliver=True, extra_toml=f"""
[retry]
min_backoff = "1h"
max_lifetime = "3s"
[routes]
"dead.example" = "[{DEAD}]:{port}"
"senders.example" = "[{A}]:{port}"
""").start()
        try:
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as c:
                c.ehlo("admin.example")
                c.mail(SENDER)
                c.rcpt("user@dead.example")
                code, reply = c.data(b"Subject: held forever\r\n\r\nx\r\n")
            qid = queued_id(reply)

            def state():
                return json.loads(relay.cli("queue", "show", qid, "--json").stdout)[
                    "recipients"][0]["state"]

            wait_for(lambda: state() == "deferred", what="the first attempt")
            held = json.loads(relay.cli("queue", "hold", qid, "--json").stdout)
            self.assertEqual(held["recipients"], 1)
            self.assertEqual(state(), "held")
            wait_for(lambda: json.loads(relay.cli("queue", "show", qid, "--json").stdout)
                     ["recipients"][0]["state"] == "expired", what="expiry of held mail")
            wait_for(lambda: mx.received_for(SENDER), what="the bounce")
            msg = email.message_from_bytes(mx.received_for(SENDER)[0]["content"],
                                           policy=email.policy.default)
            self.assertEqual(msg.get_payload()[1].get_payload()[1]["Action"], "failed")
            relay.stop()
            # With the daemon stopped the commands still work on the database.
            stopped = relay.cli("queue", "hold", "--all", "--json")
            self.assertEqual(json.loads(stopped.stdout)["action"], "hold")
        finally:
            relay.cleanup()
            mx.stop()


class QueueFileTest(unittest.TestCase):
    def test_free_space_is_shown_and_compact_waits_for_a_stopped_daemon(self):
        relay = Relay().start()  # delivery off: the mail stays
        try:
            big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 1000
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as c:
                for i in range(40):
                    c.sendmail(SENDER, [f"user{i}@example.net"], big)
            relay.cli("queue", "delete", "--all")
            stats = json.loads(relay.cli("queue", "stats", "--json").stdout)
            self.assertGreater(stats["queue_file_bytes"], 30 * 1024 * 1024)
            self.assertGreater(stats["queue_file_free_bytes"], 30 * 1024 * 1024)
            self.assertTrue(stats["queue_file_gives_back_free_space"])  # a queue made now
            self.assertRegex(relay.cli("queue", "stats").stdout.decode(),
                             r"queue file: +\d+\.\d MiB, \d+\.\d MiB of it free")
            # The daemon gives the surplus back at its next purge (once a minute): not waited
            # for here. compact refuses beside it, and works once it is stopped.
            busy = relay.cli("queue", "compact", check=False)
            self.assertEqual(busy.returncode, 2)
            self.assertIn(b"stop it first", busy.stderr)
            relay.stop()
            out = relay.cli("queue", "compact").stdout.decode()
            m = re.search(r"([\d.]+) MiB before, ([\d.]+) MiB now", out)
            self.assertTrue(m, out)
            self.assertGreater(float(m.group(1)), 30)
            self.assertLess(float(m.group(2)), 1)
            relay.start()  # the daemon takes the compacted queue
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as c:
                c.sendmail(SENDER, ["after@example.net"], b"Subject: after\r\n\r\nx\r\n")
            self.assertEqual(len(relay.queue_json()), 1)
            relay.stop()
        finally:
            relay.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
