"""End to end: what a failure means does not depend on its words (issue 22, step 2).

The same failing deliveries run twice in one DNSSEC world: once as they are, once with
DANERELAY_TEST_REWORD=1, which makes the daemon reword every text it records for a failure
(its own account and the server's reply). The bounces' status fields, the causes and TLS-RPT
result types `queue show` lists and the metrics counters must be the same in both runs, while
the texts differ (so the rewording demonstrably happened)."""
import email
import email.policy
import json
import smtplib
import ssl
import time
import unittest
import urllib.request

from dnsworld import DnsWorld
from harness import Relay, free_port, queued_id
from mx import MxServer, free_port_on, self_signed, tlsa_3_1_1
from world_case import WorldCase

IPS = {name: f"127.0.0.{n}" for n, name in enumerate(
    ["dest", "mismatch", "plain", "noreq", "senders", "dead"], start=130)}
SENDER = "alice@senders.example"
# Case -> (recipient, over REQUIRETLS).
CASES = {
    "mismatch": ("user@mismatch.example", False),      # DANE: the certificate matches no TLSA
    "nostarttls": ("user@plain.example", False),       # DANE, and no STARTTLS offered
    "rcpt5xx": ("reject.user@dest.example", False),    # 550 5.1.1 to RCPT
    "rcpt4xx": ("defer.user@dest.example", False),     # 450 4.2.0 to RCPT, until it expires
    "refused": ("user@dead.example", False),           # nobody listens
    "requiretls": ("user@noreq.example", True),        # the next hop lacks REQUIRETLS
}
# Counters that depend on how many attempts fit in the lifetime are compared by presence only.
TIMING = ('outcome="deferred"', "danerelay_dane_total", "danerelay_connection")


class RewordedTest(WorldCase):
    @classmethod
    def build(cls):
        certs = cls.scratch("danerelay-reworded-")
        port = cls.port = free_port_on(list(IPS.values()))
        crt = {n: self_signed(certs, f"mx.{n}.example") for n in ("dest", "senders", "noreq")}
        other_crt, _ = self_signed(certs, "someone.else")
        w = cls.world = DnsWorld(cls.tmp)
        w.zone("dest.example.").mx(IPS["dest"])
        w.zone("mismatch.example.").mx(IPS["dest"], tlsa_3_1_1(other_crt), port)
        w.zone("plain.example.").mx(IPS["plain"], tlsa_3_1_1(other_crt), port)
        w.zone("noreq.example.").mx(IPS["noreq"], tlsa_3_1_1(crt["noreq"][0]), port)
        w.zone("senders.example.").mx(IPS["senders"], tlsa_3_1_1(crt["senders"][0]), port)
        w.zone("dead.example.").mx(IPS["dead"])
        w.start()
        cls.servers.update({
            "dest": MxServer(IPS["dest"], port, *crt["dest"]),
            "plain": MxServer(IPS["plain"], port),  # no certificate: no STARTTLS
            "noreq": MxServer(IPS["noreq"], port, *crt["noreq"]),
            "senders": MxServer(IPS["senders"], port, *crt["senders"], requiretls=True),
        })
        for s in cls.servers.values():
            s.start()
        cls.runs = {}
        for reworded in (False, True):
            cls.runs[reworded] = cls.run_once(reworded)

    @classmethod
    def run_once(cls, reworded):
        """One relay through every case: {case: (show snapshot, notice)}, and the metrics."""
        cls.servers["senders"].recorder.messages.clear()
        metrics_port = free_port()
        relay = cls.relay = Relay(
            deliver=True, starttls=True,
            env={"DANERELAY_TEST_REWORD": "1"} if reworded else None,
            extra_toml=cls.world.toml() + f"""
[metrics]
address = "127.0.0.1"
port = {metrics_port}
[delivery]
port = {cls.port}
connect_timeout = "5s"
[retry]
min_backoff = "2s"
max_backoff = "2s"
max_lifetime = "8s"
""").start()
        ids = {case: cls.submit(relay, rcpt, requiretls) for case, (rcpt, requiretls)
               in CASES.items()}
        shows = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            for case, qid in ids.items():
                if case in shows:
                    continue
                r = relay.cli("queue", "show", qid, "--json", check=False)
                if r.returncode != 0:
                    continue
                m = json.loads(r.stdout)
                if m["recipients"][0]["state"] not in ("queued", "attempting") and m["attempts"]:
                    shows[case] = m
            notices = cls.notices(ids)
            if len(notices) == len(CASES):
                break
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        metrics = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                   for line in text.splitlines() if line and not line.startswith("#")}
        relay.stop()
        relay.cleanup()
        cls.relay = None
        return {"shows": shows, "notices": notices, "metrics": metrics}

    @classmethod
    def submit(cls, relay, rcpt, requiretls):
        with smtplib.SMTP("127.0.0.1", relay.tls_port, timeout=30) as c:
            c.ehlo("test.example")
            c.starttls(context=ssl._create_unverified_context())
            c.ehlo("test.example")
            c.mail(SENDER, ["REQUIRETLS"] if requiretls else [])
            c.rcpt(rcpt)
            code, reply = c.data(b"Subject: test\r\n\r\nBody.\r\n")
            assert code == 250, reply
            return queued_id(reply)

    @classmethod
    def notices(cls, ids):
        """{case: per-recipient fields of its failure notice} at the sender's MX."""
        by_id = {qid: case for case, qid in ids.items()}
        out = {}
        for got in cls.servers["senders"].received_for(SENDER):
            msg = email.message_from_bytes(got["content"], policy=email.policy.default)
            blocks = msg.get_payload()[1].get_payload()  # message/delivery-status: field blocks
            case = by_id.get(str(blocks[0]["X-Danerelay-Queue-ID"]))
            if case:
                out[case] = {k: str(v) for k, v in blocks[1].items()}
        return out

    def test_every_case_ran_in_both_runs(self):
        for reworded, run in self.runs.items():
            self.assertEqual(sorted(run["shows"]), sorted(CASES), reworded)
            self.assertEqual(sorted(run["notices"]), sorted(CASES), reworded)

    def test_bounce_status_fields_are_the_same_and_the_texts_differ(self):
        for case in CASES:
            a, b = self.runs[False]["notices"][case], self.runs[True]["notices"][case]
            for field in ("Status", "Action"):
                self.assertEqual(a[field], b[field], (case, field))
            self.assertEqual(a["Diagnostic-Code"].split(";")[0], b["Diagnostic-Code"].split(";")[0],
                             case)
            self.assertNotEqual(a["Diagnostic-Code"], b["Diagnostic-Code"], case)
            self.assertIn("reworded: ", b["Diagnostic-Code"], case)

    def test_queue_show_causes_and_result_types_are_the_same(self):
        for case in CASES:
            a, b = self.runs[False]["shows"][case], self.runs[True]["shows"][case]
            ra, rb = a["recipients"][0], b["recipients"][0]
            self.assertEqual((ra["state"], ra["last_status"], ra["last_cause"]),
                             (rb["state"], rb["last_status"], rb["last_cause"]), case)
            self.assertNotEqual(ra["last_cause"], "", case)
            self.assertEqual([x["result_type"] for x in a["attempts"]],
                             [x["result_type"] for x in b["attempts"]], case)
            self.assertNotEqual(ra["last_reply"], rb["last_reply"], case)

    def test_metrics_are_the_same(self):
        a, b = self.runs[False]["metrics"], self.runs[True]["metrics"]
        self.assertEqual({k for k, v in a.items() if v}, {k for k, v in b.items() if v})
        for k, v in a.items():
            if not any(t in k for t in TIMING):
                self.assertEqual(v, b[k], k)


if __name__ == "__main__":
    unittest.main()
