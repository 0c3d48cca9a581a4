"""End to end: the queue's disk fails under the real daemon (an LD_PRELOAD shim makes writes to
SQLite's WAL fail with ENOSPC while a trigger file exists), and no mail is lost or duplicated;
the operator can still empty a full disk.

A static route to an IP literal sends the test domain to an aiosmtpd MX on 127.0.0.40, another
to 127.0.0.41 where nothing listens (mail there stays deferred); no DNS."""
import json
import os
import smtplib
import sqlite3
import subprocess
import time
import unittest
import urllib.request

from harness import DANERELAY, Relay, free_port, queued_id, wait_for
from mx import MxServer

MX = "127.0.0.40"
DOWN = "127.0.0.41"
FAULTFS = os.environ.get("FAULTFS", "build/tests/danerelay_faultfs.so")


class FaultTest(unittest.TestCase):
    def setUp(self):
        self.port = free_port(MX)
        self.mx = MxServer(MX, self.port, data_delay=2.0).start()
        # Under AddressSanitizer the shim is loaded ahead of ASan's runtime, which ASan would
        # refuse; the shim only wraps write calls, so the order does not matter here.
        env = {"LD_PRELOAD": FAULTFS, "ASAN_OPTIONS": "verify_asan_link_order=0"}
        self.metrics_port = free_port()
        self.relay = Relay(deliver=True, env=env, extra_toml=f"""
[metrics]
address = "127.0.0.1"
port = {self.metrics_port}
[delivery]
connect_timeout = "2s"
[routes]
"faults.example" = "[{MX}]:{self.port}"
"down.example" = "[{DOWN}]:{self.port}"
""")
        self.trigger = os.path.join(self.relay.dir, "disk-full")
        self.relay.env["FAULTFS_TRIGGER"] = self.trigger
        self.relay.start()

    def tearDown(self):
        try:
            self.relay.stop()
        finally:
            self.relay.cleanup()
            self.mx.stop()

    def send(self, rcpt):
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30) as c:
            c.ehlo("faults.test")
            c.mail("alice@senders.example")
            c.rcpt(rcpt)
            code, text = c.data(b"Subject: disk full\r\n\r\nbody\r\n")
            self.assertEqual(code, 250, text)
            return queued_id(text)

    def state(self, queue_id):
        return self.relay.show_json(queue_id)["recipients"][0]["state"]

    def test_outcome_refused_for_good_is_not_retried_and_the_states_are_kept(self):
        queue_id = self.send("dave@faults.example")
        wait_for(lambda: self.mx.recorder.in_data == 1, what="delivery to start")
        # While the MX holds DATA, the queue starts refusing attempt rows: a permanent error
        # (a constraint), which trying again cannot cure.
        db = sqlite3.connect(os.path.join(self.relay.dir, "queue", "queue.db"))
        db.execute("CREATE TRIGGER refuse_attempts BEFORE INSERT ON attempts "
                   "BEGIN SELECT RAISE(ABORT, 'injected: refused for good'); END")
        db.commit()
        db.close()
        # The recipient's state is written without its attempt: delivered, not "attempting".
        wait_for(lambda: self.state(queue_id) == "delivered", timeout=30,
                 what="the recipient's state written alone")
        logs = self.relay.logs()
        self.assertIn(f"{queue_id}: recording the delivery outcome failed", logs)
        self.assertIn("not retried (a permanent error)", logs)
        self.assertNotIn("retrying in", logs)
        self.assertIn(f"{queue_id}: recorded the recipients' states without the attempt", logs)
        # A restart finds nothing in delivery: the message is not sent a second time.
        self.relay.stop()
        self.relay.start()
        time.sleep(2.5)
        self.assertNotIn("were in delivery when the daemon stopped", self.relay.logs())
        self.assertEqual(len(self.mx.received_for("dave@faults.example")), 1)

    def test_outcome_write_retries_are_bounded_and_counted(self):
        queue_id = self.send("erin@faults.example")
        wait_for(lambda: self.mx.recorder.in_data == 1, what="delivery to start")
        open(self.trigger, "w").close()
        # Six tries, 1 to 16 s apart: the whole outcome is given up after about half a minute,
        # never retried without end.
        wait_for(lambda: f"{queue_id}: recording the delivery outcome failed" in self.relay.logs()
                 and "giving up after 6 tries" in self.relay.logs(), timeout=90,
                 what="the outcome write given up")
        self.assertEqual(self.state(queue_id), "attempting")
        os.unlink(self.trigger)
        # Then the recipient's state is written alone: delivered, and not sent again.
        wait_for(lambda: self.state(queue_id) == "delivered", timeout=40,
                 what="the recipient's state written alone")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=10) as r:
            metrics = r.read().decode()
        self.assertRegex(metrics, r"(?m)^danerelay_outcome_write_retries_total ([5-9]|\d\d+)$")
        self.assertIn('danerelay_outcomes_not_recorded_total{reason="write_failed"} 1', metrics)
        self.assertEqual(len(self.mx.received_for("erin@faults.example")), 1)

    def full_disk_cli(self, *args):
        """The command line on the same full disk as the daemon (the shim preloaded)."""
        env = dict(os.environ, LD_PRELOAD=FAULTFS, FAULTFS_TRIGGER=self.trigger,
                   ASAN_OPTIONS="verify_asan_link_order=0")
        return subprocess.run([DANERELAY, "--config", self.relay.config, *args],
                              capture_output=True, timeout=60, env=env)

    def fill_disk_behind_deferred_mail(self, count):
        """Queues `count` messages that stay deferred, then fills the disk: not a byte free."""
        ids = [self.send(f"user{i}@down.example") for i in range(count)]
        for queue_id in ids:
            wait_for(lambda: self.state(queue_id) == "deferred", what=f"{queue_id} deferred")
        self.assertGreaterEqual(os.path.getsize(self.reserve), 4 << 20)
        open(self.trigger, "w").close()
        # The disk is full for the command line too: an operation that frees nothing fails.
        held = self.full_disk_cli("queue", "hold", ids[0])
        self.assertEqual(held.returncode, 2, held.stderr)
        self.assertIn(b"disk is full", held.stderr)
        return ids

    def reserve_comes_back(self):
        self.assertFalse(os.path.exists(self.reserve))  # given back to the file system
        os.unlink(self.trigger)
        wait_for(lambda: os.path.exists(self.reserve) and
                 os.path.getsize(self.reserve) >= 4 << 20, what="the reserve made again")
        # Logged once the upkeep that made it returns: after the file, not with it.
        wait_for(lambda: "kept in reserve for the operator" in self.relay.logs(),
                 what="the log line about the reserve")

    @property
    def reserve(self):
        return os.path.join(self.relay.dir, "queue", "queue.reserve")

    def test_delete_all_empties_a_full_disk(self):
        ids = self.fill_disk_behind_deferred_mail(3)
        deleted = self.full_disk_cli("queue", "delete", "--all", "--json")
        self.assertEqual(deleted.returncode, 0, deleted.stderr)
        self.assertIn(b"gave the 4 MiB reserve", deleted.stderr)
        self.assertEqual(sorted(json.loads(deleted.stdout)["messages"]), sorted(ids))
        self.assertEqual(self.relay.queue_json(), [])  # the mail is gone
        for queue_id in ids:
            self.assertEqual(self.relay.cli("queue", "show", queue_id, check=False).returncode, 1)
        self.reserve_comes_back()

    def test_bounce_works_on_a_full_disk(self):
        ids = self.fill_disk_behind_deferred_mail(2)
        bounced = self.full_disk_cli("queue", "bounce", ids[0], "--json")
        self.assertEqual(bounced.returncode, 0, bounced.stderr)
        self.assertIn(b"gave the 4 MiB reserve", bounced.stderr)
        self.assertEqual(json.loads(bounced.stdout)["recipients"], 1)
        self.assertEqual(self.state(ids[0]), "failed")
        self.assertEqual(self.state(ids[1]), "deferred")  # only what was asked for
        # The bounce itself was queued in the same transaction: a message from <>.
        self.assertTrue(any(m["sender"] == "" for m in self.relay.queue_json()))
        self.reserve_comes_back()

    def test_acceptance_while_the_disk_is_full_is_a_temporary_error(self):
        open(self.trigger, "w").close()
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30) as c:
            c.ehlo("faults.test")
            c.mail("alice@senders.example")
            c.rcpt("bob@faults.example")
            code, text = c.data(b"Subject: refused\r\n\r\nbody\r\n")
        self.assertEqual(code, 451, text)
        os.unlink(self.trigger)
        queue_id = self.send("carol@faults.example")  # and it recovers
        wait_for(lambda: self.state(queue_id) == "delivered", what="delivery after recovery")
        self.assertEqual(self.mx.received_for("bob@faults.example"), [])

    def test_outcome_that_cannot_be_written_is_retried_not_redelivered(self):
        queue_id = self.send("bob@faults.example")
        # The MX holds the DATA reply for 2 s: the disk fills while the delivery is under way,
        # so the "delivered" outcome cannot be written when it comes.
        wait_for(lambda: self.mx.recorder.in_data == 1, what="delivery to start")
        open(self.trigger, "w").close()
        wait_for(lambda: "recording the delivery outcome failed" in self.relay.logs(),
                 what="the failed outcome write to be logged")
        self.assertEqual(len(self.mx.received_for("bob@faults.example")), 1)
        self.assertEqual(self.state(queue_id), "attempting")  # not forgotten, not released
        os.unlink(self.trigger)
        wait_for(lambda: self.state(queue_id) == "delivered", timeout=30,
                 what="the outcome to be written once the disk has room")
        # A restart finds nothing in delivery: the message is not sent a second time.
        self.relay.stop()
        self.relay.start()
        time.sleep(2.5)
        self.assertNotIn("were in delivery when the daemon stopped", self.relay.logs())
        self.assertEqual(len(self.mx.received_for("bob@faults.example")), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
