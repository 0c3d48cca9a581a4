"""End to end: DANE at the edges (issue 11), in a local DNSSEC world built by the test.

CNAME chains that turn insecure, TLSA lookups that fail, malformed TLSA under mandatory DANE.
Like test_delivery.py: NSD serves the world on loopback, aiosmtpd MX servers with certificates
made now, and each case checks what arrived, the queue and the stored attempts."""
import json
import logging
import os
import smtplib
import tempfile
import time
import unittest

from dnsworld import DnsWorld
from world_case import WorldCase
from harness import Relay, free_port, queued_id, wait_for
from mx import MxServer, RefusingStarttlsServer, free_port_on, self_signed, tlsa_3_1_1

IPS = {name: f"127.0.0.{n}" for n, name in enumerate(
    ["alias", "tlsafail", "junk", "testing", "idn", "idn-ascii", "hsfail", "refuse"], start=20)}
SENDER = "alice@sender.example"
# The broken-TLS MX fails every handshake on purpose; aiosmtpd would print each one's traceback.
logging.getLogger("mail.log").setLevel(logging.CRITICAL)


class DaneEdgesTest(WorldCase):
    @classmethod
    def build(cls):
        cls.tmp = tempfile.mkdtemp(prefix="danerelay-edges-")
        certs = os.path.join(cls.tmp, "certs")
        os.makedirs(certs)
        port = cls.port = free_port_on(list(IPS.values()) + ["::1"])
        ee_crt, ee_key = self_signed(certs, "host.plainhost.example")
        other_crt, _ = self_signed(certs, "someone.else")
        cls.ee_tlsa, other_tlsa = tlsa_3_1_1(ee_crt), tlsa_3_1_1(other_crt)

        w = cls.world = DnsWorld(cls.tmp)
        # A signed MX host name that is a CNAME into an unsigned zone: its own TLSA records
        # apply (a match is verified, a mismatch deferred).
        w.zone("plainhost.example.", "unsigned").add(f"host A {IPS['alias']}")
        w.zone("alias.example.").add("@ MX 10 mx").add("mx CNAME host.plainhost.example.") \
            .add(f"_{port}._tcp.mx TLSA {cls.ee_tlsa}")
        w.zone("alias-bad.example.").add("@ MX 10 mx").add("mx CNAME host.plainhost.example.") \
            .add(f"_{port}._tcp.mx TLSA {other_tlsa}")
        # A secure CNAME to a signed host whose TLSA name lies in an unsigned zone: that insecure
        # answer is not used; the TLSA records at the original name are.
        w.zone("signedhost.example.").add(f"host A {IPS['alias']}")
        w.zone("_tcp.host.signedhost.example.", "unsigned").add(f"_{port} TLSA {other_tlsa}")
        w.zone("alias-fallback.example.").add("@ MX 10 mx") \
            .add("mx CNAME host.signedhost.example.").add(f"_{port}._tcp.mx TLSA {cls.ee_tlsa}")
        # Secure MX and address records, but the TLSA lookup fails (NSD answers SERVFAIL for a
        # zone it cannot load): deferred in both modes, never read as "no TLSA".
        w.zone("tlsafail.example.").add("@ MX 10 mx").add(f"mx A {IPS['tlsafail']}")
        w.zone("_tcp.mx.tlsafail.example.", "servfail")
        w.zone("mand-tlsafail.example.").add("@ MX 10 mx.tlsafail.example.")
        # Only malformed TLSA records (OpenSSL refuses them), under mandatory DANE.
        w.zone("junk.example.").add(f"mx A {IPS['junk']}") \
            .add(f"_{port}._tcp.mx TLSA 3 1 0 {'AB' * 40}")
        w.zone("mand-junk.example.").add("@ MX 10 mx.junk.example.")
        # Signed, no TLSA: mandatory DANE would defer (step 4); in testing mode it is delivered.
        w.zone("testing.example.").add("@ MX 10 mx").add(f"mx A {IPS['testing']}")
        # IDN: bücher.example (DANE, an MX that offers SMTPUTF8), café.example (an MX without
        # SMTPUTF8), ñu.example (signed, no TLSA; mandatory by its U-label in the configuration).
        w.zone("xn--bcher-kva.example.").add("@ MX 10 mx").add(f"mx A {IPS['idn']}") \
            .add(f"_{port}._tcp.mx TLSA {cls.ee_tlsa}")
        w.zone("xn--caf-dma.example.").add("@ MX 10 mx").add(f"mx A {IPS['idn-ascii']}")
        w.zone("xn--u-qga.example.").add("@ MX 10 mx").add(f"mx A {IPS['idn-ascii']}")
        # Handshakes that fail: retried in plain text under "may", deferred under DANE.
        w.zone("hsfail.example.").add("@ MX 10 mx").add(f"mx A {IPS['hsfail']}")
        w.zone("hsfail-dane.example.").add("@ MX 10 mx").add(f"mx A {IPS['hsfail']}") \
            .add(f"_{port}._tcp.mx TLSA {cls.ee_tlsa}")
        # STARTTLS answered 454 under DANE.
        w.zone("refuse.example.").add("@ MX 10 mx").add(f"mx A {IPS['refuse']}") \
            .add(f"_{port}._tcp.mx TLSA {cls.ee_tlsa}")
        # An MX on ::1 (AAAA only), DANE-verified.
        w.zone("v6.example.").add("@ MX 10 mx").add("mx AAAA ::1") \
            .add(f"_{port}._tcp.mx TLSA {cls.ee_tlsa}")
        w.start()

        for name in IPS:
            if name not in ("hsfail", "refuse"):
                cls.servers[name] = MxServer(IPS[name], port, ee_crt, ee_key,
                                             smtputf8=name == "idn").start()
        cls.servers["hsfail"] = MxServer(IPS["hsfail"], port, ee_crt, ee_key,
                                         broken_tls=True).start()
        cls.servers["refuse"] = RefusingStarttlsServer(IPS["refuse"], port).start()
        cls.servers["v6"] = MxServer("::1", port, ee_crt, ee_key).start()

        cls.metrics_port = free_port()
        cls.relay = Relay(deliver=True, extra_toml=w.toml() + f"""
[dane]
mandatory_domains = ["mand-tlsafail.example", "mand-junk.example", "alias-bad.example",
                     ".alias.example", "ñu.example"]
testing_domains = ["testing.example"]
[metrics]
address = "127.0.0.1"
port = {cls.metrics_port}
[delivery]
port = {port}
connect_timeout = "5s"
[retry]
min_backoff = "1h"
""").start()
        cls.ids = {}
        cls.domains = ["alias", "alias-bad", "alias-fallback", "tlsafail", "mand-tlsafail",
                       "mand-junk", "testing", "hsfail", "hsfail-dane", "refuse", "v6"]
        with smtplib.SMTP("127.0.0.1", cls.relay.port, timeout=30) as c:
            c.ehlo("test.example")
            for d in cls.domains:
                c.mail(SENDER)
                c.rcpt(f"user@{d}.example")
                code, reply = c.data(f"Subject: to {d}\r\n\r\nHello {d}.\r\n".encode())
                assert code == 250, reply
                cls.ids[d] = queued_id(reply)
            # Under SMTPUTF8, to U-label domains.
            for key, rcpt in (("bücher", "user@bücher.example"), ("café", "info@café.example"),
                              ("jörg", "jörg@café.example"), ("ñu", "user@ñu.example")):
                c.mail(SENDER, ["SMTPUTF8"])
                c.rcpt(rcpt)
                # An ASCII header: only the envelope needs SMTPUTF8.
                code, reply = c.data(b"Subject: IDN\r\n\r\nHello.\r\n")
                assert code == 250, reply
                cls.ids[key] = queued_id(reply)
                cls.domains.append(key)
            # SMTPUTF8 with UTF-8 in the header, to the MX without SMTPUTF8: cannot go there.
            c.mail(SENDER, ["SMTPUTF8"])
            c.rcpt("kontakt@café.example")
            code, reply = c.data("Subject: Grüße aus Köln\r\n\r\nHallo.\r\n".encode())
            assert code == 250, reply
            cls.ids["café-header"] = queued_id(reply)
            cls.domains.append("café-header")
            # From an IDN sender whose MX lacks SMTPUTF8, to a recipient that cannot get it:
            # the bounce goes back there, its To: header with an A-label.
            c.mail("postmaster@café.example", ["SMTPUTF8"])
            c.rcpt("jörg@café.example")
            code, reply = c.data(b"Subject: IDN sender\r\n\r\nHello.\r\n")
            assert code == 250, reply
            cls.ids["idn-sender"] = queued_id(reply)
            cls.domains.append("idn-sender")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = [cls.show(cls.ids[d])["recipients"][0]["state"] for d in cls.domains]
            if all(s not in ("queued", "attempting") for s in states) and cls.stats()["preflight"]:
                break
            time.sleep(0.3)

    @classmethod
    def stats(cls):
        return json.loads(cls.relay.cli("queue", "stats", "--json").stdout)

    def outcome(self, key):
        m = self.show(self.ids[key])
        return m["recipients"][0], m["attempts"]

    def arrived(self, server, domain):
        return self.servers[server].received_for(f"user@{domain}.example")

    def dane_check(self, *args):
        r = self.relay.cli("dane-check", "--json", *args, check=False)
        return r.returncode, json.loads(r.stdout)

    # --- CNAME chains -----------------------------------------------------------------------

    def test_secure_alias_to_unsigned_zone_uses_tlsa_at_the_alias(self):
        rcpt, attempts = self.outcome("alias")
        self.assertEqual(rcpt["state"], "delivered", attempts)
        self.assertEqual(len(self.arrived("alias", "alias")), 1)
        a = attempts[-1]
        self.assertEqual(a["dnssec_address"], "insecure, behind a secure CNAME")
        self.assertEqual(a["tls_verdict"], "Verified")
        self.assertEqual(a["tlsa_record"], self.ee_tlsa)
        status, report = self.dane_check("alias.example")
        self.assertEqual(status, 0, report)
        host = report["hosts"][0]
        self.assertEqual(host["tlsa_base"], "mx.alias.example")
        self.assertEqual(host["connections"][0]["tls_verdict"], "Verified")

    def test_secure_alias_with_a_mismatching_tlsa_is_deferred(self):
        rcpt, attempts = self.outcome("alias-bad")
        self.assertEqual((rcpt["state"], rcpt["last_status"]), ("deferred", "4.7.5"), attempts)
        self.assertEqual(self.arrived("alias", "alias-bad"), [])
        self.assertEqual(attempts[-1]["tls_verdict"], "Untrusted")

    def test_insecure_tlsa_at_the_expanded_name_falls_back_to_the_original(self):
        rcpt, attempts = self.outcome("alias-fallback")
        self.assertEqual(rcpt["state"], "delivered", attempts)
        a = attempts[-1]
        self.assertEqual(a["dnssec_address"], "secure")
        self.assertEqual((a["tls_verdict"], a["tlsa_record"]), ("Verified", self.ee_tlsa))
        status, report = self.dane_check("alias-fallback.example")
        self.assertEqual(report["hosts"][0]["tlsa_base"], "mx.alias-fallback.example")

    # --- TLSA lookups that fail, malformed TLSA ---------------------------------------------

    def test_tlsa_servfail_is_deferred_in_both_modes(self):
        for domain in ("tlsafail", "mand-tlsafail"):
            rcpt, attempts = self.outcome(domain)
            self.assertEqual((rcpt["state"], rcpt["last_status"]), ("deferred", "4.4.3"),
                             (domain, attempts))
            self.assertIn("TLSA lookup failed", rcpt["last_reply"])
            self.assertEqual((attempts[-1]["dnssec_mx"], attempts[-1]["dnssec_address"]),
                             ("secure", "secure"))
            self.assertTrue(attempts[-1]["dnssec_tlsa"].startswith("failed"), attempts[-1])
            self.assertEqual(attempts[-1]["ip"], "")  # never contacted
        self.assertEqual(self.servers["tlsafail"].recorder.messages, [])

    def test_malformed_only_tlsa_under_mandatory_dane_is_deferred(self):
        rcpt, attempts = self.outcome("mand-junk")
        self.assertEqual((rcpt["state"], rcpt["last_status"]), ("deferred", "4.7.5"), attempts)
        self.assertIn("no usable TLSA records", rcpt["last_reply"])
        self.assertEqual(self.servers["junk"].recorder.messages, [])

    # --- [dane] testing_domains ------------------------------------------------------------

    def test_testing_domain_is_delivered_with_would_defer_recorded(self):
        rcpt, attempts = self.outcome("testing")
        self.assertEqual(rcpt["state"], "delivered", attempts)
        self.assertEqual(len(self.arrived("testing", "testing")), 1)
        note = attempts[-1]["note"]
        self.assertIn("mandatory DANE would defer: 4.7.5", note)
        self.assertIn("no TLSA records (step 4)", note)
        self.assertIn(f"warning: {self.ids['testing']}: DANE testing for testing.example: "
                      "mx.testing.example would be deferred under mandatory DANE",
                      self.relay.logs())
        text = self.relay.cli("queue", "show", self.ids["testing"]).stdout.decode()
        self.assertIn("Note: DANE testing: mandatory DANE would defer", text)
        # A domain that passes mandatory DANE carries no note.
        self.assertEqual(self.outcome("alias")[1][-1]["note"], "")
        self.assertEqual(self.scrape()["danerelay_dane_testing_would_defer_total"], 1)

    # --- The pre-flight check of mandatory domains ------------------------------------------

    def scrape(self):
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=10) as r:
            text = r.read().decode()
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines() if line and not line.startswith("#")}

    def test_preflight_warns_about_mandatory_domains_that_would_be_deferred(self):
        logs = self.relay.logs()
        prefix = "warning: pre-flight: mail to mandatory-DANE domain"
        # The TLSA record does not match the server's certificate: named with host and reason.
        self.assertIn(f"{prefix} alias-bad.example would be deferred now: MX host "
                      f"mx.alias-bad.example[{IPS['alias']}]: 4.7.5 Server certificate not verified", logs)
        self.assertIn(f"{prefix} mand-tlsafail.example would be deferred now: MX host "
                      "mx.tlsafail.example: 4.4.3 TLSA lookup failed", logs)
        self.assertIn(f"{prefix} mand-junk.example would be deferred now: MX host "
                      "mx.junk.example: 4.7.5 mandatory DANE: no usable TLSA records", logs)
        self.assertIn("pre-flight: mail to mandatory-DANE domain alias.example would be "
                      "delivered via mx.alias.example", logs)
        self.assertNotIn(f"{prefix} alias.example", logs)
        # No mail was sent by the check: alias-bad's MX got nothing, alias's only the one test
        # message.
        self.assertEqual(self.arrived("alias", "alias-bad"), [])
        self.assertEqual(len(self.arrived("alias", "alias")), 1)
        stats = self.stats()
        self.assertEqual(stats["preflight_failing_domains"], 4, stats)  # and xn--u-qga.example
        self.assertTrue(any("alias-bad.example WOULD BE DEFERRED" in line
                            for line in stats["preflight"]), stats)
        text = self.relay.cli("queue", "stats").stdout.decode()
        self.assertIn("pre-flight:  alias.example ok, via mx.alias.example", text)
        m = self.scrape()
        self.assertEqual(m['danerelay_dane_preflight_failing{domain="alias-bad.example"}'], 1)
        self.assertEqual(m['danerelay_dane_preflight_failing{domain="mand-junk.example"}'], 1)
        self.assertEqual(m['danerelay_dane_preflight_failing{domain="alias.example"}'], 0)

    # --- IDN and SMTPUTF8 -----------------------------------------------------------------------

    def test_idn_domain_is_looked_up_as_a_labels_and_verified(self):
        rcpt, attempts = self.outcome("bücher")
        self.assertEqual(rcpt["state"], "delivered", attempts)
        self.assertEqual(attempts[-1]["tls_verdict"], "Verified")
        self.assertEqual(attempts[-1]["mx_host"], "mx.xn--bcher-kva.example")
        # The next hop offers SMTPUTF8: the address goes on as it was given.
        got = self.servers["idn"].received_for("user@bücher.example")
        self.assertEqual(len(got), 1)
        status, report = self.dane_check("bücher.example")
        self.assertEqual((status, report["verdict"]), (0, "delivered"), report)

    def test_without_smtputf8_at_the_next_hop_domains_go_as_a_labels(self):
        rcpt, attempts = self.outcome("café")
        self.assertEqual(rcpt["state"], "delivered", attempts)
        got = self.servers["idn-ascii"].received_for("info@xn--caf-dma.example")
        self.assertEqual(len(got), 1)

    def test_without_smtputf8_at_the_next_hop_a_utf8_local_part_bounces_5_6_7(self):
        rcpt, attempts = self.outcome("jörg")
        self.assertEqual((rcpt["state"], rcpt["last_status"]), ("failed", "5.6.7"), attempts)
        self.assertIn("does not support SMTPUTF8", rcpt["last_reply"])
        # jörg's mail was never offered to that MX: only info@'s and (a bounce) postmaster@'s.
        with self.servers["idn-ascii"].recorder.lock:
            got = {a for m in self.servers["idn-ascii"].recorder.messages for a in m["to"]}
        self.assertLessEqual(got, {"info@xn--caf-dma.example", "postmaster@xn--caf-dma.example"})

    def test_bounce_to_an_idn_sender_needs_no_smtputf8(self):
        rcpt, attempts = self.outcome("idn-sender")
        self.assertEqual((rcpt["state"], rcpt["last_status"]), ("failed", "5.6.7"), attempts)
        wait_for(lambda: self.servers["idn-ascii"].received_for(
            "postmaster@xn--caf-dma.example"), what="the bounce at café.example's MX")
        bounce = self.servers["idn-ascii"].received_for("postmaster@xn--caf-dma.example")[0]
        self.assertEqual(bounce["from"], "<>")
        self.assertIn(b"To: <postmaster@xn--caf-dma.example>\r\n", bounce["content"])
        self.assertIn(b"Undelivered Mail Returned to Sender", bounce["content"])

    def test_without_smtputf8_at_the_next_hop_a_utf8_header_bounces_5_6_7(self):
        rcpt, attempts = self.outcome("café-header")
        self.assertEqual((rcpt["state"], rcpt["last_status"]), ("failed", "5.6.7"), attempts)
        self.assertIn("which the message header needs", rcpt["last_reply"])
        self.assertEqual(self.servers["idn-ascii"].received_for("kontakt@xn--caf-dma.example"), [])

    def test_mandatory_domain_given_as_u_label_matches(self):
        rcpt, attempts = self.outcome("ñu")
        self.assertEqual((rcpt["state"], rcpt["last_status"]), ("deferred", "4.7.5"), attempts)
        self.assertIn("mandatory DANE: no TLSA records", rcpt["last_reply"])

    # --- Handshakes, STARTTLS refused, IPv6 -------------------------------------------------

    def test_handshake_failure_under_may_is_retried_in_plain_text(self):
        rcpt, attempts = self.outcome("hsfail")
        self.assertEqual(rcpt["state"], "delivered", attempts)
        got = self.arrived("hsfail", "hsfail")
        self.assertEqual(len(got), 1)
        self.assertFalse(got[0]["tls"])
        self.assertEqual([a["tls_verdict"] for a in attempts], ["failed", "none"], attempts)
        self.assertIn("TLS handshake with mx.hsfail.example", attempts[0]["reply"])

    def test_handshake_failure_under_dane_is_deferred(self):
        rcpt, attempts = self.outcome("hsfail-dane")
        self.assertEqual((rcpt["state"], rcpt["last_status"]), ("deferred", "4.7.5"), attempts)
        self.assertIn("TLS handshake with mx.hsfail-dane.example", rcpt["last_reply"])
        self.assertEqual(len(attempts), 1)  # no plain-text retry
        self.assertEqual(self.arrived("hsfail", "hsfail-dane"), [])

    def test_starttls_refused_with_454_under_dane_is_deferred(self):
        rcpt, attempts = self.outcome("refuse")
        self.assertEqual((rcpt["state"], rcpt["last_status"]), ("deferred", "4.7.5"), attempts)
        self.assertIn("STARTTLS refused by mx.refuse.example", rcpt["last_reply"])
        self.assertIn("454 4.7.0", rcpt["last_reply"])
        self.assertEqual(self.servers["refuse"].messages, [])

    def test_mx_on_ipv6_loopback_is_dane_verified(self):
        rcpt, attempts = self.outcome("v6")
        self.assertEqual(rcpt["state"], "delivered", attempts)
        self.assertEqual((attempts[-1]["ip"], attempts[-1]["tls_verdict"]), ("::1", "Verified"))
        self.assertEqual(len(self.arrived("v6", "v6")), 1)
        self.assertIn("Verified TLS connection established to mx.v6.example[::1]",
                      self.relay.logs())


if __name__ == "__main__":
    unittest.main(verbosity=2)
