"""End to end: delivery with DNSSEC and DANE in a local world built by the test.

NSD serves a signed root, "example." and child zones (signed, unsigned, bogus) on loopback;
danerelayd validates with the world's root key; aiosmtpd MX servers with certificates made now
listen on 127.0.0.x. Each case checks what arrived at the MX, the recipient's state in the queue,
and the stored attempt (DNSSEC facts, TLS verdict, matched TLSA record)."""
import json
import os
import shutil
import smtplib
import tempfile
import time
import unittest

from dnsworld import DnsWorld
from harness import Relay, queued_id
from mx import (MxServer, free_port_on, private_ca, self_signed, signed_by, tlsa_2_0_1,
                tlsa_3_1_1)

IPS = {name: f"127.0.0.{n}" for n, name in enumerate(
    ["ee", "ta", "mismatch", "notls", "unsigned", "notlsa", "unusable", "unusable-notls",
     "bogus", "second"], start=10)}


class DeliveryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.servers, cls.world, cls.relay = {}, None, None
        try:
            cls.build()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def build(cls):
        cls.tmp = tempfile.mkdtemp(prefix="danerelay-dane-")
        certs = os.path.join(cls.tmp, "certs")
        os.makedirs(certs)
        port = free_port_on(list(IPS.values()))
        cls.port = port

        ee_crt, ee_key = self_signed(certs, "mx.ee.example")
        ca_crt, ca_key = private_ca(certs)
        ta_chain, ta_key = signed_by(certs, "mx.ta.example", ca_crt, ca_key)
        bad_crt, bad_key = self_signed(certs, "mx.mismatch.example")
        other_crt, _ = self_signed(certs, "someone.else")
        plain_crt, plain_key = self_signed(certs, "mx.plain")
        cls.ee_tlsa = tlsa_3_1_1(ee_crt)
        cls.ta_tlsa = tlsa_2_0_1(ca_crt)

        w = cls.world = DnsWorld(cls.tmp)
        tlsa = f"_{port}._tcp.mx"

        def zone(name, kind="signed", tlsa_rr=None, mx_ip=None):
            z = w.zone(f"{name}.example.", kind).add("@ MX 10 mx").add(f"mx A {mx_ip or IPS[name]}")
            if tlsa_rr:
                z.add(f"{tlsa} TLSA {tlsa_rr}")
            return z

        zone("ee", tlsa_rr=cls.ee_tlsa)
        zone("ta", tlsa_rr=cls.ta_tlsa)
        zone("mismatch", tlsa_rr=tlsa_3_1_1(other_crt))
        zone("notls", tlsa_rr=tlsa_3_1_1(plain_crt))
        zone("unsigned", kind="unsigned")
        zone("mand-unsigned", kind="unsigned", mx_ip=IPS["unsigned"])
        zone("notlsa")
        zone("mand-notlsa", mx_ip=IPS["notlsa"])
        zone("unusable", tlsa_rr="1 1 1 " + tlsa_3_1_1(plain_crt).split()[3])
        zone("unusable-notls", tlsa_rr="1 1 1 " + tlsa_3_1_1(plain_crt).split()[3])
        zone("bogus", kind="bogus", tlsa_rr=cls.ee_tlsa, mx_ip=IPS["bogus"])
        w.zone("nullmx.example.").add("@ MX 0 .")
        # Two MX hosts: the first fails DANE, the second passes.
        w.zone("twomx.example.").add("@ MX 10 mx1").add("@ MX 20 mx2") \
            .add(f"mx1 A {IPS['mismatch']}").add(f"mx2 A {IPS['second']}") \
            .add(f"_{port}._tcp.mx1 TLSA {tlsa_3_1_1(other_crt)}") \
            .add(f"_{port}._tcp.mx2 TLSA {cls.ee_tlsa}")
        w.start()

        cls.servers.update({
            "ee": MxServer(IPS["ee"], port, ee_crt, ee_key),
            "ta": MxServer(IPS["ta"], port, ta_chain, ta_key),
            "mismatch": MxServer(IPS["mismatch"], port, bad_crt, bad_key),
            "notls": MxServer(IPS["notls"], port),
            "unsigned": MxServer(IPS["unsigned"], port, plain_crt, plain_key),
            "notlsa": MxServer(IPS["notlsa"], port, plain_crt, plain_key),
            "unusable": MxServer(IPS["unusable"], port, plain_crt, plain_key),
            "unusable-notls": MxServer(IPS["unusable-notls"], port),
            "bogus": MxServer(IPS["bogus"], port, ee_crt, ee_key),
            "second": MxServer(IPS["second"], port, ee_crt, ee_key),
        })
        for s in cls.servers.values():
            s.start()

        cls.relay = Relay(deliver=True, extra_toml=w.toml() + f"""
[dane]
mandatory_domains = ["mand-unsigned.example", ".mand-notlsa.example"]
[delivery]
port = {port}
connect_timeout = "5s"
[retry]
min_backoff = "1h"
[routes]
"routed.example" = "[mx.ee.example]:{port}"
"literal.example" = "[{IPS['unsigned']}]"
""").start()

        cls.ids = {}
        domains = ["ee", "ta", "mismatch", "notls", "unsigned", "mand-unsigned", "notlsa",
                   "mand-notlsa", "unusable", "unusable-notls", "bogus", "nullmx", "nosuch",
                   "twomx", "routed", "literal"]
        with smtplib.SMTP("127.0.0.1", cls.relay.port, timeout=30) as c:
            c.ehlo("test.example")
            for d in domains:
                rcpt = f"user@{d}.example"
                c.mail("sender@example.org")
                c.rcpt(rcpt)
                code, reply = c.data(f"Subject: to {d}\r\n\r\nHello {d}.\r\n".encode())
                assert code == 250, reply
                cls.ids[d] = queued_id(reply)

        # Wait (bounded) until no recipient is queued or in delivery any more.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            states = [cls.show(d)["recipients"][0]["state"] for d in domains]
            if all(s not in ("queued", "attempting") for s in states):
                break
            time.sleep(0.3)

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.relay:
                if os.environ.get("KEEP"):
                    print(cls.relay.logs())
                cls.relay.stop()
        finally:
            if cls.relay:
                cls.relay.cleanup()
            for s in cls.servers.values():
                s.stop()
            if cls.world:
                cls.world.stop()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def show(cls, domain):
        return json.loads(cls.relay.cli("queue", "show", cls.ids[domain], "--json").stdout)

    def outcome(self, domain):
        m = self.show(domain)
        return m["recipients"][0], m["attempts"]

    def arrived(self, server, domain):
        return self.servers[server].received_for(f"user@{domain}.example")

    # --- DANE passes -------------------------------------------------------------------

    def test_dane_ee_match(self):
        rcpt, attempts = self.outcome("ee")
        self.assertEqual(rcpt["state"], "delivered", rcpt)
        self.assertEqual(rcpt["last_status"], "2.0.0")
        got = self.arrived("ee", "ee")
        self.assertEqual(len(got), 1)
        self.assertTrue(got[0]["tls"])
        self.assertIn(b"Hello ee.", got[0]["content"])
        a = attempts[-1]
        self.assertEqual((a["dnssec_mx"], a["dnssec_address"]), ("secure", "secure"))
        self.assertTrue(a["dnssec_tlsa"].startswith("secure: 3 1 1"), a)
        self.assertEqual(a["tls_verdict"], "Verified")
        self.assertEqual(a["tlsa_record"], self.ee_tlsa)
        self.assertEqual(a["ip"], IPS["ee"])
        self.assertIn(f"Verified TLS connection established to mx.ee.example[{IPS['ee']}]",
                      self.relay.logs())

    def test_dane_ta_match_with_private_ca(self):
        rcpt, attempts = self.outcome("ta")
        self.assertEqual(rcpt["state"], "delivered", attempts)
        self.assertEqual(len(self.arrived("ta", "ta")), 1)
        self.assertEqual(attempts[-1]["tls_verdict"], "Verified")
        self.assertEqual(attempts[-1]["tlsa_record"], self.ta_tlsa)

    def test_second_mx_used_when_first_fails_dane(self):
        rcpt, attempts = self.outcome("twomx")
        self.assertEqual(rcpt["state"], "delivered", attempts)
        self.assertEqual(self.arrived("mismatch", "twomx"), [])
        self.assertEqual(len(self.arrived("second", "twomx")), 1)
        self.assertEqual([a["mx_host"] for a in attempts], ["mx1.twomx.example", "mx2.twomx.example"])
        self.assertEqual(attempts[0]["status"], "4.7.5")
        self.assertEqual(attempts[0]["tls_verdict"], "Untrusted")
        self.assertEqual(attempts[1]["tls_verdict"], "Verified")

    # --- DANE fails: deferred, nothing delivered ---------------------------------------------

    def test_digest_mismatch_is_deferred_4_7_5(self):
        rcpt, attempts = self.outcome("mismatch")
        self.assertEqual(rcpt["state"], "deferred")
        self.assertEqual(rcpt["last_status"], "4.7.5")
        self.assertIn("Server certificate not verified", rcpt["last_reply"])
        self.assertEqual(self.arrived("mismatch", "mismatch"), [])
        self.assertEqual(attempts[-1]["tls_verdict"], "Untrusted")
        self.assertEqual(attempts[-1]["tlsa_record"], "")
        self.assertIsNotNone(rcpt["next_attempt"])

    def test_valid_tlsa_but_no_starttls_is_deferred(self):
        rcpt, attempts = self.outcome("notls")
        self.assertEqual((rcpt["state"], rcpt["last_status"]), ("deferred", "4.7.5"))
        self.assertIn("does not offer STARTTLS", rcpt["last_reply"])
        self.assertEqual(self.arrived("notls", "notls"), [])

    def test_bogus_signatures_are_deferred(self):
        rcpt, attempts = self.outcome("bogus")
        self.assertEqual((rcpt["state"], rcpt["last_status"]), ("deferred", "4.4.3"), rcpt)
        self.assertEqual(self.arrived("bogus", "bogus"), [])

    # --- Opportunistic without DANE, and the same domains under mandatory DANE -----------

    def test_unsigned_domain_delivered_over_unauthenticated_tls(self):
        rcpt, attempts = self.outcome("unsigned")
        self.assertEqual(rcpt["state"], "delivered", attempts)
        got = self.arrived("unsigned", "unsigned")
        self.assertEqual(len(got), 1)
        self.assertTrue(got[0]["tls"])
        self.assertEqual(attempts[-1]["dnssec_mx"], "insecure")
        self.assertEqual(attempts[-1]["dnssec_tlsa"], "")  # never looked up
        self.assertEqual(attempts[-1]["tls_verdict"], "Untrusted")

    def test_unsigned_domain_deferred_when_mandatory(self):
        rcpt, attempts = self.outcome("mand-unsigned")
        self.assertEqual((rcpt["state"], rcpt["last_status"]), ("deferred", "4.7.5"))
        self.assertIn("not DNSSEC-signed", rcpt["last_reply"])
        self.assertEqual(self.arrived("unsigned", "mand-unsigned"), [])

    def test_signed_domain_without_tlsa(self):
        rcpt, attempts = self.outcome("notlsa")
        self.assertEqual(rcpt["state"], "delivered", attempts)
        self.assertEqual(attempts[-1]["dnssec_tlsa"], "secure, no records")
        self.assertEqual(len(self.arrived("notlsa", "notlsa")), 1)
        mrcpt, _ = self.outcome("mand-notlsa")
        self.assertEqual((mrcpt["state"], mrcpt["last_status"]), ("deferred", "4.7.5"))
        self.assertIn("no TLSA records", mrcpt["last_reply"])
        self.assertEqual(self.arrived("notlsa", "mand-notlsa"), [])

    def test_only_unusable_tlsa_means_tls_but_unchecked(self):
        rcpt, attempts = self.outcome("unusable")
        self.assertEqual(rcpt["state"], "delivered", attempts)
        got = self.arrived("unusable", "unusable")
        self.assertEqual(len(got), 1)
        self.assertTrue(got[0]["tls"])
        # Without STARTTLS the same records mean: not in plain text.
        rcpt2, _ = self.outcome("unusable-notls")
        self.assertEqual((rcpt2["state"], rcpt2["last_status"]), ("deferred", "4.7.5"))
        self.assertEqual(self.arrived("unusable-notls", "unusable-notls"), [])

    # --- Static routes ----------------------------------------------------------------------

    def test_route_to_a_dane_host_is_verified(self):
        # routed.example has no DNS at all: the route's host is treated as its MX host.
        rcpt, attempts = self.outcome("routed")
        self.assertEqual(rcpt["state"], "delivered", attempts)
        self.assertEqual(len(self.arrived("ee", "routed")), 1)
        self.assertEqual(attempts[-1]["mx_host"], "mx.ee.example")
        self.assertEqual(attempts[-1]["tls_verdict"], "Verified")

    def test_route_to_an_ip_literal_is_opportunistic(self):
        rcpt, attempts = self.outcome("literal")
        self.assertEqual(rcpt["state"], "delivered", attempts)
        self.assertEqual(len(self.arrived("unsigned", "literal")), 1)
        self.assertEqual(attempts[-1]["dnssec_address"], "insecure")

    # --- Permanent DNS results -----------------------------------------------------------

    def test_null_mx_fails_5_1_10(self):
        rcpt, attempts = self.outcome("nullmx")
        self.assertEqual((rcpt["state"], rcpt["last_status"]), ("failed", "5.1.10"))

    def test_nxdomain_fails_5_1_2(self):
        rcpt, attempts = self.outcome("nosuch")
        self.assertEqual((rcpt["state"], rcpt["last_status"]), ("failed", "5.1.2"))

    def test_queue_list_hides_completed_messages(self):
        listed = {m["id"] for m in self.relay.queue_json()}
        self.assertNotIn(self.ids["ee"], listed)
        self.assertIn(self.ids["mismatch"], listed)
        text = self.relay.cli("queue", "show", self.ids["ee"]).stdout.decode()
        self.assertIn("TLS: Verified, matched 3 1 1", text)


    # --- danerelay dane-check against the same world ---------------------------------------

    def dane_check(self, *args):
        return self.relay.cli("dane-check", *args, check=False)

    def test_dane_check_ee(self):
        r = self.dane_check("ee.example")
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, out)
        self.assertIn(f"TLSA _{self.port}._tcp.mx.ee.example: secure", out)
        self.assertIn(f"{self.ee_tlsa} (usable)", out)
        self.assertIn(f"Matched DANE EE certificate at depth 0: {self.ee_tlsa}", out)
        self.assertIn(f"pkey_fingerprint(sha256)={self.ee_tlsa.split()[3]}", out)
        self.assertIn(f"Verified TLS connection established to mx.ee.example[{IPS['ee']}]", out)
        self.assertIn("would be delivered via mx.ee.example", out)

    def test_dane_check_ta_json(self):
        r = self.dane_check("ta.example", "--json")
        self.assertEqual(r.returncode, 0, r.stdout)
        report = json.loads(r.stdout)
        self.assertEqual(report["verdict"], "delivered")
        conn = report["hosts"][0]["connections"][0]
        self.assertEqual(conn["tls_verdict"], "Verified")
        self.assertEqual(conn["matched_tlsa"], self.ta_tlsa)
        self.assertEqual(conn["matched_depth"], 1)  # the CA, one above the server certificate
        self.assertEqual(len(conn["chain"]), 2)
        self.assertEqual(conn["chain"][1]["cert_sha256"], self.ta_tlsa.split()[3])

    def test_dane_check_failures_exit_non_zero(self):
        mismatch = self.dane_check("mismatch.example")
        self.assertEqual(mismatch.returncode, 1, mismatch.stdout)
        self.assertIn(b"Untrusted TLS connection established", mismatch.stdout)
        self.assertIn(b"would be deferred", mismatch.stdout)
        unsigned = self.dane_check("unsigned.example")
        self.assertEqual(unsigned.returncode, 0, unsigned.stdout)
        forced = self.dane_check("unsigned.example", "--mandatory", "--json")
        self.assertEqual(forced.returncode, 1, forced.stdout)
        host = json.loads(forced.stdout)["hosts"][0]
        self.assertEqual((host["policy_step"], host["status"]), (2, "4.7.5"))
        self.assertEqual(host["connections"], [])  # a deferred host is never contacted
        self.assertEqual(self.dane_check("nullmx.example").returncode, 2)
        self.assertEqual(self.dane_check("bogus.example").returncode, 1)
        # dane-check sends no mail.
        self.assertEqual(len(self.arrived("ee", "ee")), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
