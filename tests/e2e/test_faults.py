"""End to end: the queue's disk fails under the real daemon (an LD_PRELOAD shim makes writes to
SQLite's WAL fail with ENOSPC while a trigger file exists), and no mail is lost or duplicated.

A static route to an IP literal sends the test domain to an aiosmtpd MX on 127.0.0.40; no DNS."""
import os
import smtplib
import time
import unittest

from harness import Relay, free_port, queued_id, wait_for
from mx import MxServer

MX = "127.0.0.40"
FAULTFS = os.environ.get("FAULTFS", "build/tests/danerelay_faultfs.so")


class FaultTest(unittest.TestCase):
    def setUp(self):
        self.port = free_port(MX)
        self.mx = MxServer(MX, self.port, data_delay=2.0).start()
        # Under AddressSanitizer the shim is loaded ahead of ASan's runtime, which ASan would
        # refuse; the shim only wraps write calls, so the order does not matter here.
        env = {"LD_PRELOAD": FAULTFS, "ASAN_OPTIONS": "verify_asan_link_order=0"}
        self.relay = Relay(deliver=True, env=env, extra_toml=f"""
[delivery]
connect_timeout = "2s"
[routes]
"faults.example" = "[{MX}]:{self.port}"
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
