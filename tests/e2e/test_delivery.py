"""End to end: delivery with DNSSEC and DANE in a local world built by the test.

NSD serves a signed root, "example." and child zones (signed, unsigned, bogus) on loopback;
danerelayd validates with the world's root key; aiosmtpd MX servers with certificates made now
listen on 127.0.0.x. Each case checks what arrived at the MX, the recipient's state in the queue,
and the stored attempt (DNSSEC facts, TLS verdict, matched TLSA record)."""
import email
import email.policy
import json
import os
import shutil
import signal
import smtplib
import tempfile
import time
import unittest
import urllib.request

from dnsworld import DnsWorld
from harness import Relay, free_port, queued_id
from mx import (MxServer, free_port_on, private_ca, self_signed, signed_by, tlsa_2_0_1,
                tlsa_3_1_1)

IPS = {name: f"127.0.0.{n}" for n, name in enumerate(
    ["ee", "ta", "mismatch", "notls", "unsigned", "notlsa", "unusable", "unusable-notls",
     "bogus", "second", "senders"], start=10)}
SENDER = "alice@senders.example"  # its MX records the bounces


class DeliveryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.servers, cls.world, cls.relay, cls.relay2 = {}, None, None, None
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
        # DANE-EE "full SPKI" and DANE-TA "full certificate" that are neither (issue 11):
        # OpenSSL refuses them, so they are unusable, not a reason to defer.
        w.zone("junk.example.").add("@ MX 10 mx").add(f"mx A {IPS['unusable']}") \
            .add(f"{tlsa} TLSA 3 1 0 {'AB' * 40}").add(f"{tlsa} TLSA 2 0 0 {'CD' * 60}")
        zone("bogus", kind="bogus", tlsa_rr=cls.ee_tlsa, mx_ip=IPS["bogus"])
        w.zone("nullmx.example.").add("@ MX 0 .")
        # Eight MX hosts where nothing listens, the first with three addresses: a delivery
        # tries the first five hosts at most, and five addresses in all (issue 11).
        many = w.zone("many.example.")
        for i in range(1, 9):
            many.add(f"@ MX {i * 10} mx{i}").add(f"mx{i} A 127.0.0.{70 + i}")
        many.add("mx1 A 127.0.0.80").add("mx1 A 127.0.0.81")
        zone("senders")
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
            "senders": MxServer(IPS["senders"], port, plain_crt, plain_key),
        })
        for s in cls.servers.values():
            s.start()

        cls.metrics_port = free_port()
        cls.relay = Relay(deliver=True, extra_toml=w.toml() + f"""
[metrics]
address = "127.0.0.1"
port = {cls.metrics_port}
[dane]
mandatory_domains = ["mand-unsigned.example", ".mand-notlsa.example"]
[delivery]
port = {port}
connect_timeout = "5s"
postmaster = "postmaster@senders.example"
[retry]
min_backoff = "1h"
[routes]
"routed.example" = "[mx.ee.example]:{port}"
"literal.example" = "[{IPS['unsigned']}]"
""").start()

        cls.ids = {}
        domains = ["ee", "ta", "mismatch", "notls", "unsigned", "mand-unsigned", "notlsa",
                   "mand-notlsa", "unusable", "unusable-notls", "junk", "bogus", "nullmx",
                   "nosuch", "many",
                   "twomx", "routed", "literal"]
        cls.domains = list(domains)  # one message each, nothing about it but its domain
        with smtplib.SMTP("127.0.0.1", cls.relay.port, timeout=30) as c:
            c.ehlo("test.example")
            for d in domains:
                rcpt = f"user@{d}.example"
                c.mail(SENDER)
                c.rcpt(rcpt)
                code, reply = c.data(f"Subject: to {d}\r\n\r\nHello {d}.\r\n".encode())
                assert code == 250, reply
                cls.ids[d] = queued_id(reply)
            # One recipient refused with 550, one accepted: a bounce for the first alone.
            c.mail(SENDER, ["RET=HDRS", "ENVID=env550"])
            c.rcpt("reject@ee.example", ["NOTIFY=FAILURE", "ORCPT=rfc822;reject@ee.example"])
            c.rcpt("user2@ee.example")
            code, reply = c.data(b"Subject: partly refused\r\n\r\nThe body stays here.\r\n")
            assert code == 250, reply
            cls.ids["reject"] = queued_id(reply)
            # NOTIFY=SUCCESS to a next hop without DSN: we report "relayed" ourselves.
            c.mail(SENDER, ["ENVID=success-1"])
            c.rcpt("happy@ee.example", ["NOTIFY=SUCCESS"])
            code, reply = c.data(b"Subject: tell me\r\n\r\nx\r\n")
            assert code == 250, reply
            cls.ids["success"] = queued_id(reply)
            # From the null sender: a failure must not produce a bounce.
            c.mail("")
            c.rcpt("reject2@ee.example")
            code, reply = c.data(b"Subject: a bounce itself\r\n\r\nx\r\n")
            assert code == 250, reply
            cls.ids["nullsender"] = queued_id(reply)
            domains += ["reject", "nullsender", "success"]

        # A second relay with a lifetime of seconds: the DANE mismatch is retried, a delay
        # warning goes out, and then the message expires and comes back with Status 4.7.5.
        cls.relay2 = Relay(deliver=True, extra_toml=w.toml() + f"""
[delivery]
port = {port}
[retry]
min_backoff = "1s"
max_backoff = "1s"
max_lifetime = "6s"
delay_warning = "2s"
""").start()
        with smtplib.SMTP("127.0.0.1", cls.relay2.port, timeout=30) as c:
            c.ehlo("test.example")
            c.mail(SENDER)
            c.rcpt("user@mismatch.example")
            code, reply = c.data(b"Subject: expire me\r\n\r\nx\r\n")
            assert code == 250, reply
            cls.expire_id = queued_id(reply)

        # Wait (bounded) until no recipient is queued or in delivery any more, the short-lived
        # message has expired, and the notices have reached the sender's MX.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            states = [cls.show(d)["recipients"][0]["state"] for d in domains]
            expired = cls.show_on(cls.relay2, cls.expire_id)["recipients"][0]["state"]
            notices = len(cls.servers["senders"].received_for(SENDER))
            if (all(s not in ("queued", "attempting") for s in states) and expired == "expired"
                    and notices >= 6):  # nullmx, nosuch, reject, success; relay2: delay, bounce
                break
            time.sleep(0.3)

    @classmethod
    def tearDownClass(cls):
        try:
            for relay in (cls.relay, cls.relay2):
                if relay:
                    if os.environ.get("KEEP"):
                        print(relay.logs())
                    relay.stop()
        finally:
            for relay in (cls.relay, cls.relay2):
                if relay:
                    relay.cleanup()
            for s in cls.servers.values():
                s.stop()
            if cls.world:
                cls.world.stop()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def show(cls, domain):
        return cls.show_on(cls.relay, cls.ids[domain])

    @staticmethod
    def show_on(relay, queue_id):
        return json.loads(relay.cli("queue", "show", queue_id, "--json").stdout)

    def outcome(self, domain):
        m = self.show(domain)
        return m["recipients"][0], m["attempts"]

    def arrived(self, server, domain):
        return self.servers[server].received_for(f"user@{domain}.example")

    # --- Metrics -----------------------------------------------------------------------

    def scrape(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=10) as r:
            self.assertEqual(r.status, 200)
            self.assertTrue(r.headers["Content-Type"].startswith("text/plain; version=0.0.4"))
            text = r.read().decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return values

    def test_metrics_count_what_happened(self):
        m = self.scrape()
        messages = [json.loads(line) for line in self.relay.cli(
            "queue", "list", "--all", "--json").stdout.decode().splitlines() if line.strip()]
        states = [r["state"] for msg in messages for r in msg["recipients"]]
        # Every delivered recipient (notices included) was counted once as sent; every message
        # that came in over SMTP as accepted.
        self.assertEqual(m['danerelay_deliveries_total{outcome="sent"}'], states.count("delivered"))
        self.assertEqual(m["danerelay_messages_accepted_total"], 21)
        self.assertGreaterEqual(m['danerelay_deliveries_total{outcome="bounced"}'],
                                states.count("failed"))
        self.assertGreaterEqual(m['danerelay_deliveries_total{outcome="deferred"}'],
                                states.count("deferred"))
        # relay/DESIGN.md's table, per host tried: ee, ta, twomx's second MX, routed verified; the
        # mismatch host (twice: its own domain, twomx's first MX); notls without STARTTLS;
        # bogus; unsigned, mand-unsigned insecure; notlsa, mand-notlsa; unusable twice.
        dane = {k.split('"')[1]: v for k, v in m.items() if k.startswith("danerelay_dane_total")}
        self.assertGreaterEqual(dane["verified"], 4, dane)
        self.assertGreaterEqual(dane["mismatch"], 2, dane)
        self.assertGreaterEqual(dane["no_starttls"], 1, dane)
        self.assertGreaterEqual(dane["dns_failure"], 1, dane)
        self.assertGreaterEqual(dane["insecure"], 2, dane)
        self.assertGreaterEqual(dane["no_tlsa"], 2, dane)
        self.assertGreaterEqual(dane["unusable_tlsa"], 3, dane)
        self.assertGreaterEqual(m['danerelay_tls_verdicts_total{verdict="Verified"}'], 4)
        self.assertGreaterEqual(m['danerelay_notices_total{kind="bounce"}'], 3)
        self.assertEqual(m['danerelay_notices_total{kind="relayed"}'], 1)
        self.assertEqual(m['danerelay_notices_total{kind="postmaster"}'], 1)
        # The queue's gauges agree with the command line.
        self.assertEqual(m["danerelay_queue_up"], 1)
        pending = [r["state"] for msg in self.relay.queue_json() for r in msg["recipients"]]
        self.assertGreater(pending.count("deferred"), 0)
        self.assertEqual(m['danerelay_queue_recipients{state="deferred"}'],
                         pending.count("deferred"))
        self.assertEqual(m["danerelay_queue_messages"], len(self.relay.queue_json()))
        self.assertGreater(m["danerelay_queue_oldest_message_age_seconds"], 0)
        # Anything but GET /metrics: 404.
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/", timeout=10)
        self.assertEqual(e.exception.code, 404)

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
        # The typed cause and TLS-RPT result type, as recorded where the failure happened.
        self.assertEqual(rcpt["last_cause"], "dane-not-verified")
        self.assertEqual(attempts[-1]["result_type"], "validation-failure")
        self.assertIn("Server certificate not verified", rcpt["last_reply"])
        self.assertEqual(self.arrived("mismatch", "mismatch"), [])
        self.assertEqual(attempts[-1]["tls_verdict"], "Untrusted")
        self.assertEqual(attempts[-1]["tlsa_record"], "")
        self.assertIsNotNone(rcpt["next_attempt"])

    def test_valid_tlsa_but_no_starttls_is_deferred(self):
        rcpt, attempts = self.outcome("notls")
        self.assertEqual((rcpt["state"], rcpt["last_status"]), ("deferred", "4.7.5"))
        self.assertEqual(rcpt["last_cause"], "starttls-not-offered")
        self.assertEqual(attempts[-1]["result_type"], "starttls-not-supported")
        self.assertIn("does not offer STARTTLS", rcpt["last_reply"])
        self.assertEqual(self.arrived("notls", "notls"), [])

    def test_bogus_signatures_are_deferred(self):
        rcpt, attempts = self.outcome("bogus")
        self.assertEqual((rcpt["state"], rcpt["last_status"]), ("deferred", "4.4.3"), rcpt)
        # Deferred because validation failed, not because of some other DNS trouble.
        self.assertIn("signature expired", rcpt["last_reply"])
        self.assertIn("(bogus)", rcpt["last_reply"])
        self.assertEqual(self.arrived("bogus", "bogus"), [])
        # The attempt that ended in DNS is recorded like any other (it used to be missing).
        self.assertEqual(len(attempts), rcpt["attempts"])
        self.assertEqual((attempts[-1]["status"], attempts[-1]["dnssec_mx"]), ("4.4.3", "failed"))
        self.assertIn("(bogus)", attempts[-1]["reply"])

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

    def test_mx_hosts_and_addresses_tried_are_bounded(self):
        rcpt, attempts = self.outcome("many")
        self.assertEqual((rcpt["state"], rcpt["last_status"]), ("deferred", "4.4.1"), rcpt)
        self.assertEqual(len(attempts), 5, attempts)
        self.assertEqual([a["mx_host"] for a in attempts],
                         ["mx1.many.example"] * 3 + ["mx2.many.example", "mx3.many.example"])
        logs = self.relay.logs()
        qid = self.ids["many"]
        self.assertIn(f"{qid}: many.example has 8 MX hosts; trying the first 5", logs)
        self.assertIn(f"{qid}: 5 addresses tried for many.example; no more this time", logs)

    def test_malformed_tlsa_is_unusable_not_a_deferral(self):
        # relay/DESIGN.md step 5: no usable TLSA record -> "encrypt" under opportunistic DANE.
        rcpt, attempts = self.outcome("junk")
        self.assertEqual(rcpt["state"], "delivered", attempts)
        got = self.arrived("unusable", "junk")
        self.assertEqual(len(got), 1)
        self.assertTrue(got[0]["tls"])
        report = json.loads(self.dane_check("junk.example", "--json").stdout)
        records = report["hosts"][0]["tlsa_records"]
        self.assertEqual([r["usable"] for r in records], [False, False], records)

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
        self.assertEqual([a["status"] for a in attempts], ["5.1.2"])

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

    def test_dane_check_predicts_the_first_delivery_pass_for_every_domain(self):
        """One table for the whole world: dane-check's verdict for each domain is what the first
        delivery pass did with the mail to it (DANE pass and mismatch, no STARTTLS, unsigned,
        mandatory, unusable and junk TLSA, bogus, null MX, NXDOMAIN, the address caps, a second
        MX, routes). Both go through the same host planner (relay/delivery/host_planner.hpp)."""
        verdict_of = {"delivered": "delivered", "deferred": "deferred", "failed": "bounced"}
        self.assertEqual(len(self.domains), 18)
        for d in self.domains:
            with self.subTest(domain=d):
                rcpt, attempts = self.outcome(d)
                report = json.loads(self.dane_check(f"{d}.example", "--json").stdout)
                self.assertEqual(report["verdict"], verdict_of[rcpt["state"]],
                                 f"delivery: {rcpt}; dane-check: {report}")

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

    def test_dane_check_follows_routes_as_delivery_does(self):
        # routed.example exists in no DNS; [routes] sends it to mx.ee.example, DANE-verified.
        r = self.dane_check("routed.example", "--json")
        self.assertEqual(r.returncode, 0, r.stdout)
        report = json.loads(r.stdout)
        self.assertEqual((report["verdict"], report["via"]), ("delivered", "mx.ee.example"))
        self.assertEqual(report["hosts"][0]["connections"][0]["tls_verdict"], "Verified")

    # --- Bounces and delay warnings, parsed with Python's email package -------------------

    def notices_about(self, queue_id):
        """The notices at the sender's MX about `queue_id`: (message, per-message fields,
        per-recipient field blocks, third part)."""
        out = []
        for got in self.servers["senders"].received_for(SENDER):
            msg = email.message_from_bytes(got["content"], policy=email.policy.default)
            self.assertIn(got["from"], ("", "<>"))  # from the null sender
            self.assertEqual(msg.get_content_type(), "multipart/report")
            self.assertEqual(msg.get_param("report-type"), "delivery-status")
            human, status, original = msg.get_payload()
            self.assertEqual(human.get_content_type(), "text/plain")
            self.assertEqual(status.get_content_type(), "message/delivery-status")
            blocks = status.get_payload()
            if blocks[0]["X-Danerelay-Queue-ID"] == queue_id:
                out.append((msg, human, blocks[0], blocks[1:], original))
        return out

    def test_550_bounces_at_once_with_rfc3464_fields(self):
        m = self.show("reject")
        self.assertEqual([r["state"] for r in m["recipients"]], ["failed", "delivered"])
        notices = self.notices_about(self.ids["reject"])
        self.assertEqual(len(notices), 1)
        msg, human, fields, recipients, original = notices[0]
        self.assertEqual(msg["Subject"], "Undelivered Mail Returned to Sender")
        self.assertEqual(msg["To"].addresses[0].addr_spec, SENDER)
        self.assertEqual(fields["Reporting-MTA"], "dns; relay.test")
        self.assertEqual(fields["Original-Envelope-Id"], "env550")
        self.assertIsNotNone(fields["Arrival-Date"])
        self.assertEqual(len(recipients), 1)  # the delivered recipient is not listed
        r = recipients[0]
        self.assertEqual(r["Final-Recipient"], "rfc822; reject@ee.example")
        self.assertEqual(r["Original-Recipient"], "rfc822; reject@ee.example")
        self.assertEqual(r["Action"], "failed")
        self.assertEqual(r["Status"], "5.1.1")
        self.assertEqual(r["Remote-MTA"], "dns; mx.ee.example")
        self.assertTrue(r["Diagnostic-Code"].startswith("smtp; 550 5.1.1 <reject@ee.example>"))
        self.assertIsNotNone(r["Last-Attempt-Date"])
        self.assertIn("refused the message", human.get_content())
        # RET=HDRS: the headers come back, the body does not.
        self.assertEqual(original.get_content_type(), "text/rfc822-headers")
        self.assertIn("Subject: partly refused", original.get_content())
        self.assertNotIn("The body stays here", original.get_content())

    def test_permanent_dns_failures_bounce(self):
        for domain, status in (("nullmx", "5.1.10"), ("nosuch", "5.1.2")):
            notices = self.notices_about(self.ids[domain])
            self.assertEqual(len(notices), 1, domain)
            self.assertEqual(notices[0][3][0]["Status"], status)
            self.assertEqual(notices[0][4].get_content_type(), "message/rfc822")

    def test_notify_success_gets_a_relayed_report(self):
        self.assertEqual(self.show("success")["recipients"][0]["state"], "delivered")
        notices = self.notices_about(self.ids["success"])
        self.assertEqual(len(notices), 1)
        msg, human, fields, recipients, original = notices[0]
        self.assertEqual(msg["Subject"], "Successful Mail Delivery Report")
        self.assertEqual(fields["Original-Envelope-Id"], "success-1")
        self.assertEqual((recipients[0]["Action"], recipients[0]["Status"]), ("relayed", "2.0.0"))
        self.assertEqual(recipients[0]["Remote-MTA"], "dns; mx.ee.example")
        self.assertEqual(original.get_content_type(), "text/rfc822-headers")

    def test_failure_from_null_sender_produces_no_bounce(self):
        self.assertEqual(self.show("nullsender")["recipients"][0]["state"], "failed")
        self.assertEqual(self.notices_about(self.ids["nullsender"]), [])
        self.assertIn(f"{self.ids['nullsender']}: undeliverable mail from <> discarded",
                      self.relay.logs())
        # The configured postmaster gets a copy instead.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            copies = self.servers["senders"].received_for("postmaster@senders.example")
            if copies:
                break
            time.sleep(0.2)
        self.assertEqual(len(copies), 1)
        msg = email.message_from_bytes(copies[0]["content"], policy=email.policy.default)
        self.assertEqual(msg["Subject"], "Postmaster Copy: Undelivered Mail")
        blocks = msg.get_payload()[1].get_payload()
        self.assertEqual(blocks[0]["X-Danerelay-Queue-ID"], self.ids["nullsender"])
        self.assertEqual((blocks[1]["Action"], blocks[1]["Status"]), ("failed", "5.1.1"))

    def test_dane_mismatch_retried_then_expired_with_4_7_5(self):
        m = self.show_on(self.relay2, self.expire_id)
        rcpt = m["recipients"][0]
        self.assertEqual((rcpt["state"], rcpt["last_status"]), ("expired", "4.7.5"))
        self.assertGreaterEqual(rcpt["attempts"], 3)  # retried with backoff before expiring
        self.assertEqual(self.arrived("mismatch", "mismatch"), [])
        notices = self.notices_about(self.expire_id)
        actions = sorted(n[3][0]["Action"] for n in notices)
        self.assertEqual(actions, ["delayed", "failed"])
        delayed = next(n for n in notices if n[3][0]["Action"] == "delayed")
        self.assertIsNotNone(delayed[3][0]["Will-Retry-Until"])
        bounce = next(n for n in notices if n[3][0]["Action"] == "failed")
        self.assertEqual(bounce[3][0]["Status"], "4.7.5")
        self.assertIn("did not match the TLSA records", bounce[1].get_content())
        self.assertEqual(bounce[4].get_content_type(), "message/rfc822")

    # --- SIGHUP -------------------------------------------------------------------------------

    def test_sighup_makes_a_domain_mandatory_for_the_next_attempt(self):
        base = self.world.toml() + f"[delivery]\nport = {self.port}\n"
        relay = Relay(deliver=True, extra_toml=base).start()
        try:
            def send(rcpt):
                with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as c:
                    c.ehlo("test.example")
                    c.mail(SENDER)
                    c.rcpt(rcpt)
                    code, reply = c.data(b"Subject: reload\r\n\r\nx\r\n")
                    self.assertEqual(code, 250, reply)
                    return queued_id(reply)

            def final_state(qid):
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    r = self.show_on(relay, qid)["recipients"][0]
                    if r["state"] not in ("queued", "attempting"):
                        return r
                    time.sleep(0.2)
                self.fail(f"{qid} still pending")

            before = final_state(send("before@notlsa.example"))
            self.assertEqual(before["state"], "delivered")
            with open(relay.config, "a") as f:
                f.write('\n[dane]\nmandatory_domains = ["notlsa.example"]\n')
            relay.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while "reloaded configuration" not in relay.logs() and time.monotonic() < deadline:
                time.sleep(0.1)
            after = final_state(send("after@notlsa.example"))
            self.assertEqual((after["state"], after["last_status"]), ("deferred", "4.7.5"))
            self.assertIn("mandatory DANE: no TLSA records", after["last_reply"])
            # An invalid file is refused and the old configuration stays in force.
            with open(relay.config) as f:
                valid = f.read()
            with open(relay.config, "a") as f:
                f.write("\n[dane]\nbogus_key = 1\n")
            relay.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while "reload failed" not in relay.logs() and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertIn("reload failed, keeping the old configuration", relay.logs())
            with open(relay.config, "w") as f:
                f.write(valid)  # for the command line below; the daemon is not told
            still = final_state(send("still@notlsa.example"))
            self.assertEqual(still["state"], "deferred")  # still mandatory
            relay.stop()
        finally:
            relay.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
