"""End to end: danerelayd started on a queue written at an earlier schema version migrates it in
place and delivers what waited in it; a queue of a newer version is refused and left as it was.
The old queues are made by the migration history in queue/store.cpp itself (its R"sql( )sql"
blocks, version v = the first v of them), filled with the columns that existed at v."""
import hashlib
import os
import re
import sqlite3
import unittest

from harness import Relay, wait_for
from mx import MxServer, free_port_on

HERE = os.path.dirname(os.path.abspath(__file__))
STORE_CPP = os.path.join(HERE, "..", "..", "queue", "store.cpp")
MX = "127.0.0.34"


def migrations():
    with open(STORE_CPP) as f:
        source = f.read()
    table = source[source.index("kMigrations[Store::kSchemaVersion] = {"):]
    table = table[:table.index("\n};")]
    return re.findall(r'R"sql\((.*?)\)sql"', table, re.S)


CONTENT = b"Subject: old\r\nMessage-ID: <old-1@senders.example>\r\n\r\nwaited\r\n"


def rows(domain):
    msg = {"id": "'OLD1'", "arrival_us": "strftime('%s','now') * 1000000", "sender":
           "'a@senders.example'", "size": str(len(CONTENT)), "client_address": "'192.0.2.7'",
           "client_helo": "'old.example'", "protocol": "'ESMTP'", "body_8bitmime": "0",
           "smtputf8": "0", "dsn_ret": "''", "dsn_envid": "''", "content": "?",
           "completed_us": "NULL"}
    rcpt = {"message_id": "'OLD1'", "idx": "0", "address": f"'b@{domain}'", "state":
            "'deferred'", "notify": "0", "orcpt": "''", "attempts": "1", "next_attempt_us":
            "strftime('%s','now') * 1000000", "last_status": "'4.4.1'", "last_reply":
            "'connection refused'", "domain": f"'{domain}'"}
    attempt = {"message_id": "'OLD1'", "recipient_idx": "0", "time_us": "1", "mx_host": "'mx'",
               "ip": "'192.0.2.25'", "dnssec_mx": "''", "dnssec_address": "''",
               "dnssec_tlsa": "''", "tls_verdict": "'none'", "tlsa_record": "''",
               "reply": "'connection refused'", "status": "'4.4.1'"}
    return [("messages", msg), ("contents", {"message_id": "'OLD1'", "data": "?"}),
            ("recipients", rcpt), ("attempts", attempt)]


def write_queue(path, version, domain):
    db = sqlite3.connect(path)
    for sql in migrations()[:version]:
        db.executescript(sql)
    db.execute(f"PRAGMA user_version = {version}")
    for table, row in rows(domain):
        have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        if not have:
            continue
        cols = [c for c in row if c in have]
        values = [row[c] for c in cols]
        db.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(values)})",
                   [CONTENT] * values.count("?"))
    db.commit()
    db.close()


class UpgradeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port_on([MX])
        cls.mx = MxServer(MX, cls.port).start()

    @classmethod
    def tearDownClass(cls):
        cls.mx.stop()

    def relay_on(self, version):
        relay = Relay(deliver=True, extra_toml=f"""
[routes]
"up.example" = "[{MX}]:{self.port}"
""")
        self.addCleanup(relay.cleanup)
        os.makedirs(os.path.join(relay.dir, "queue"), mode=0o700)
        write_queue(os.path.join(relay.dir, "queue", "queue.db"), version, "up.example")
        return relay

    def test_every_earlier_schema_is_migrated_and_its_mail_delivered(self):
        latest = len(migrations())
        self.assertGreaterEqual(latest, 12)
        for version in range(1, latest):
            with self.subTest(version=version):
                before = len(self.mx.recorder.messages)
                relay = self.relay_on(version).start()
                wait_for(lambda: len(self.mx.recorder.messages) > before,
                         what=f"the mail of a schema-{version} queue delivered")
                got = self.mx.recorder.messages[-1]
                self.assertEqual(got["to"], ["b@up.example"])
                self.assertIn(b"waited", got["content"])
                shown = relay.show_json("OLD1")
                self.assertEqual(shown["recipients"][0]["state"], "delivered")
                self.assertEqual(len(shown["attempts"]), 2)  # the old attempt, kept, and this
                relay.stop()

    def test_a_newer_queue_is_refused_and_left_alone(self):
        relay = self.relay_on(len(migrations()))
        path = os.path.join(relay.dir, "queue", "queue.db")
        db = sqlite3.connect(path)
        db.execute(f"PRAGMA user_version = {len(migrations()) + 1}")
        db.close()
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        with self.assertRaises(Exception):
            relay.start()
        self.assertIn("made by a newer danerelay", relay.logs())
        with open(path, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), digest)


if __name__ == "__main__":
    unittest.main()
