"""End to end: mail loops (issue 20).

A route that points at the relay itself, an MX record in the signed DNS world that names one of
the relay's own listeners, a next hop that greets with the relay's own host name (Postfix's
smtp-sink with -h), and a message that has already passed more than [limits] max_hops relays.
Each must end in one 5.4.6 bounce to the sender, never in copies of the message."""
import smtplib
import subprocess
import tempfile
import time
import unittest

from dnsworld import DnsWorld
from harness import Relay, queued_id, wait_for, wait_for_port
from mx import MxServer, free_port_on
from world_case import Process, WorldCase

SELF_MX_IP = "127.0.0.61"   # a second listener of the relay, named by an MX record
SENDERS_IP = "127.0.0.62"   # the senders' MX: bounces arrive here; also the hops.example route
GREETER_IP = "127.0.0.63"   # smtp-sink greeting as "relay.test", the relay's own host name
SENDER = "alice@senders.example"


class LoopTest(WorldCase):
    @classmethod
    def build(cls):
        cls.tmp = tempfile.mkdtemp(prefix="danerelay-loops-")
        port = cls.port = free_port_on([SELF_MX_IP, SENDERS_IP, GREETER_IP])
        w = cls.world = DnsWorld(cls.tmp)
        w.zone("selfmx.example.").add("@ MX 10 mx").add(f"mx A {SELF_MX_IP}")
        w.zone("senders.example.").add("@ MX 10 mx").add(f"mx A {SENDERS_IP}")
        w.start()
        cls.mx = cls.servers["mx"] = MxServer(SENDERS_IP, port).start()
        cls.servers["sink"] = Process(subprocess.Popen(
            ["smtp-sink", "-u", "nobody", "-h", "relay.test", f"{GREETER_IP}:{port}", "10"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for_port(GREETER_IP, port)
        cls.relay = Relay(deliver=True, extra_toml=w.toml() + f"""
[[listener]]
address = "{SELF_MX_IP}"
port = {port}
[delivery]
port = {port}
[retry]
min_backoff = "1h"
""")
        # The route to the relay's own first listener needs its port, chosen by the harness.
        with open(cls.relay.config, "a") as f:
            f.write(f"""
[routes]
"self.example" = "[127.0.0.1]:{cls.relay.port}"
"greet.example" = "[{GREETER_IP}]:{port}"
"hops.example" = "[{SENDERS_IP}]:{port}"
""")
        cls.relay.start()

    def send(self, rcpt, received=0, subject="loop test"):
        header = "".join(f"Received: from hop{i}.example by hop{i + 1}.example; "
                         f"Fri, 4 Dec 2026 12:00:00 +0000\r\n" for i in range(received))
        data = f"{header}From: {SENDER}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nbody\r\n"
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30) as c:
            c.ehlo("client.example")
            c.mail(SENDER)
            c.rcpt(rcpt)
            code, msg = c.data(data.encode())
            self.assertEqual(code, 250, msg)
            return queued_id(msg)

    def final_state(self, queue_id):
        def done():
            r = self.relay.show_json(queue_id)["recipients"][0]
            return r["state"] in ("failed", "delivered")
        wait_for(done, timeout=30, what=f"{queue_id} to be final")
        return self.relay.show_json(queue_id)["recipients"][0]

    def bounce_for(self, rcpt):
        def found():
            return [m for m in self.mx.received_for(SENDER)
                    if rcpt in m["content"].decode(errors="replace")]
        wait_for(found, timeout=30, what=f"the bounce about {rcpt}")
        return found()

    def assert_looped(self, rcpt, queue_id, why):
        r = self.final_state(queue_id)
        self.assertEqual(r["state"], "failed")
        self.assertEqual(r["last_status"], "5.4.6")
        self.assertIn(why, r["last_reply"])
        bounces = self.bounce_for(rcpt)
        self.assertEqual(len(bounces), 1)
        self.assertIn("Status: 5.4.6", bounces[0]["content"].decode(errors="replace"))
        # No copy of the message was ever queued: the only messages addressed to `rcpt` are
        # the original.
        time.sleep(1)
        copies = [m for m in self.relay.cli("queue", "list", "--all", "--json").stdout
                  .decode().splitlines() if rcpt in m]
        self.assertEqual(len(copies), 1, copies)

    def test_route_to_the_relay_itself(self):
        rcpt = "user@self.example"
        qid = self.send(rcpt)
        self.assert_looped(rcpt, qid, "mail for self.example loops back to myself")

    def test_mx_record_naming_one_of_its_listeners(self):
        rcpt = "user@selfmx.example"
        qid = self.send(rcpt)
        self.assert_looped(rcpt, qid, "mail for selfmx.example loops back to myself")
        self.assertIn(f"[{SELF_MX_IP}]:{self.port} is where I listen",
                      self.relay.show_json(qid)["recipients"][0]["last_reply"])

    def test_next_hop_greeting_with_our_own_host_name(self):
        rcpt = "user@greet.example"
        qid = self.send(rcpt)
        self.assert_looped(rcpt, qid, "greeted me with my own hostname relay.test")

    def test_more_received_fields_than_max_hops_are_returned(self):
        # 49 from the client and ours make 50: within the limit.
        ok = "fifty@hops.example"
        qid = self.send(ok, received=49)
        self.assertEqual(self.final_state(qid)["state"], "delivered")
        self.assertEqual(len(self.mx.received_for(ok)), 1)
        # 50 and ours make 51: a loop. Returned, never relayed.
        looped = "fiftyone@hops.example"
        qid = self.send(looped, received=50)
        r = self.final_state(qid)
        self.assertEqual((r["state"], r["last_status"]), ("failed", "5.4.6"))
        self.assertIn("too many hops (51 Received header fields", r["last_reply"])
        self.assertEqual(self.mx.received_for(looped), [])
        bounce = self.bounce_for(looped)[0]["content"].decode(errors="replace")
        self.assertIn("Status: 5.4.6", bounce)
        self.assertIn("Action: failed", bounce)


if __name__ == "__main__":
    unittest.main()
