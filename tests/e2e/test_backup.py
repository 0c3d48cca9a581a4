"""End to end: `danerelay queue backup` beside a daemon under load, and the restore that
danerelay(8) describes (BACKUP AND RESTORE), in place and on another machine (a second queue
directory). Every message acknowledged before the backup began is in the copy."""
import os
import shutil
import smtplib
import stat
import threading
import time
import unittest

from harness import Relay, queued_id, wait_for

DOWN = "127.0.0.31"  # nothing listens: the mail stays deferred in the queue
ROUTES = f"""
[delivery]
connect_timeout = "2s"
[retry]
min_backoff = "1h"
[routes]
"down.example" = "[{DOWN}]:2"
"""


BODY = (b"x" * 70 + b"\r\n") * 30


class Load:
    """Clients sending messages with two recipients as fast as the relay takes them; each
    acknowledgement is recorded with its time."""

    def __init__(self, port, clients=3):
        self.port, self.acked, self.errors = port, [], []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(n,)) for n in range(clients)]

    def run(self, n):
        deadline = time.monotonic() + 90
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as c:
                c.ehlo(f"load{n}.example")
                i = 0
                while not self.stop.is_set() and time.monotonic() < deadline:
                    c.mail("load@senders.example")
                    c.rcpt(f"a{i}@down.example")
                    c.rcpt(f"b{i}@down.example")
                    code, reply = c.data(f"Subject: load {n}/{i}\r\n\r\n".encode() + BODY)
                    if code != 250:
                        raise AssertionError(f"{code} {reply}")
                    with self.lock:
                        self.acked.append((queued_id(reply), time.monotonic()))
                    i += 1
        except Exception as e:  # reported by the test, not lost in a thread
            self.errors.append(repr(e))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


def queue_ids(relay):
    return {m["id"] for m in relay.queue_json()}


class BackupTest(unittest.TestCase):
    def setUp(self):
        self.relay = Relay(deliver=True, extra_toml=ROUTES).start()
        self.addCleanup(self.relay.cleanup)
        self.backup = os.path.join(self.relay.dir, "backup", "queue-backup.db")
        os.makedirs(os.path.dirname(self.backup))

    def backup_under_load(self):
        with Load(self.relay.port) as load:
            wait_for(lambda: len(load.acked) >= 60, timeout=60, what="60 acknowledged messages")
            began = time.monotonic()
            r = self.relay.cli("queue", "backup", self.backup)
            ended = time.monotonic()
            time.sleep(0.5)  # the load goes on after the copy
        self.assertEqual(load.errors, [])
        before = {qid for qid, t in load.acked if t < began}
        after = {qid for qid, t in load.acked if t > ended}
        self.assertGreaterEqual(len(before), 60)
        self.assertTrue(after, "the load did not go on beside the backup")
        self.assertIn(b"messages", r.stdout)
        return before, after

    def test_backup_under_load_restored_on_another_machine(self):
        before, after = self.backup_under_load()
        mode = stat.S_IMODE(os.stat(self.backup).st_mode)
        self.assertEqual(mode, 0o600)
        self.assertFalse(os.path.exists(self.backup + "-wal"))
        # A second backup never overwrites the first.
        again = self.relay.cli("queue", "backup", self.backup, check=False)
        self.assertEqual(again.returncode, 2)
        self.assertIn(b"never overwrites", again.stderr)

        # Another machine: a new queue directory holding the copy as queue.db.
        other = Relay(deliver=False)
        self.addCleanup(other.cleanup)
        os.makedirs(os.path.join(other.dir, "queue"), mode=0o700)
        shutil.copy(self.backup, os.path.join(other.dir, "queue", "queue.db"))
        other.start()
        restored = queue_ids(other)
        self.assertEqual(before - restored, set(), "acknowledged before the backup, not in it")
        # The copy is a snapshot: what was acknowledged after it ended is not in it.
        self.assertEqual(after & restored, set())
        shown = other.show_json(sorted(before)[0])
        self.assertEqual([r["state"] for r in shown["recipients"]], ["deferred", "deferred"])
        other.stop()
        self.relay.stop()

    def test_restore_in_place(self):
        before, _ = self.backup_under_load()
        self.relay.stop()
        # danerelay(8): with danerelayd stopped, the copy replaces queue.db and the old
        # write-ahead log goes (it belongs to the file being replaced).
        queue = os.path.join(self.relay.dir, "queue")
        shutil.copy(self.backup, os.path.join(queue, "queue.db"))
        for suffix in ("-wal", "-shm"):
            if os.path.exists(os.path.join(queue, "queue.db" + suffix)):
                os.remove(os.path.join(queue, "queue.db" + suffix))
        self.relay.start()
        self.assertEqual(before - queue_ids(self.relay), set())
        # The restored queue takes new mail beside the old.
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30) as c:
            c.sendmail("load@senders.example", ["new@down.example"], b"Subject: new\r\n\r\nx\r\n")
        wait_for(lambda: len(queue_ids(self.relay) - before) >= 1, what="the new message queued")
        self.relay.stop()


if __name__ == "__main__":
    unittest.main()
