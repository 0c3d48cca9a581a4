"""End to end: the operator's sender checks ([sender_checks], seed 002 "Absender-Adresse")
against a local DNSSEC world served by NSD: the sender domain must exist (NXDOMAIN or no
records: 550 5.1.8; a DNS failure: 450 4.1.8), a null MX is refused, mail exchangers on
loopback, private or unique-local addresses are refused when reject_private_mx is on, RHSBL
listings are refused, an allow-list admits only its senders, trusted clients can be exempt."""
import os
import shutil
import smtplib
import tempfile
import unittest

from dnsworld import DnsWorld
from harness import Relay, free_port
from mx import MxServer

OWN_MX = "127.0.0.42"


def mail_from(relay, sender):
    with smtplib.SMTP("127.0.0.1", relay.port, timeout=60) as c:
        c.ehlo("client.example")
        return c.mail(sender)


class SenderChecksTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="danerelay-senders-")
        cls.world, cls.relays, cls.mx = None, [], None
        try:
            w = cls.world = DnsWorld(cls.tmp)
            # Public addresses appear only as DNS data: nothing here connects to them.
            w.zone("good.example.").add("@ MX 10 mx").add("mx A 8.8.8.8")
            w.zone("aonly.example.").add("@ A 8.8.4.4")
            w.zone("empty.example.").add('@ TXT "no mail here"')
            w.zone("nullmx.example.").add("@ MX 0 .")
            w.zone("bogus.example.", kind="bogus").add("@ MX 10 mx").add("mx A 8.8.8.8")
            w.zone("local.example.").add("@ MX 10 mx").add("mx A 127.0.0.1")
            w.zone("private.example.").add("@ MX 10 mx").add("mx A 10.1.2.3")
            w.zone("ula.example.").add("@ MX 10 mx").add("mx AAAA fd00::25")
            w.zone("implicitprivate.example.").add("@ A 192.168.1.25")
            w.zone("spammer.example.").add("@ MX 10 mx").add("mx A 8.8.8.8")
            w.zone("refused.example.").add("@ MX 10 mx").add("mx A 8.8.8.8")
            # 127.255.255.254 is Spamhaus's "query via a public resolver refused": no listing.
            w.zone("rbl.example.").add("spammer.example A 127.0.0.2") \
                .add("refused.example A 127.255.255.254")
            w.zone("own.example.").add("@ MX 10 mx").add(f"mx A {OWN_MX}")
            w.start()
            # The operator's own domain's MX: refuses local parts starting with "reject".
            cls.mx_port = free_port(OWN_MX)
            cls.mx = MxServer(OWN_MX, cls.mx_port).start()
            cls.strict = cls.relay("domain_exists = true\nreject_private_mx = true\n"
                                   'rhsbl = ["rbl.example"]')
            cls.lenient = cls.relay("domain_exists = true\nreject_private_mx = false")
            allow = os.path.join(cls.tmp, "allowed")
            with open(allow, "w") as f:
                f.write("# who may send\nAlice@good.example\n@aonly.example\n")
            cls.allow = cls.relay(f'allow_list = "{allow}"\ndomain_exists = true')
            cls.exempt = cls.relay("domain_exists = true\nexempt_trusted = true")
            cls.verify = cls.relay(f'verify_domains = ["own.example"]\nverify_port = {cls.mx_port}')
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def relay(cls, checks):
        r = Relay(sender_checks=checks, extra_toml=cls.world.toml())
        cls.relays.append(r)
        return r.start()

    @classmethod
    def tearDownClass(cls):
        try:
            for r in cls.relays:
                r.stop()
        finally:
            for r in cls.relays:
                r.cleanup()
            if cls.mx:
                cls.mx.stop()
            if cls.world:
                cls.world.stop()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def assertReply(self, reply, code, text):
        self.assertEqual(reply[0], code, reply)
        self.assertIn(text.encode(), reply[1])

    def test_existing_domains_are_accepted(self):
        for sender in ("alice@good.example", "bob@aonly.example"):
            self.assertEqual(mail_from(self.strict, sender)[0], 250, sender)
        self.assertEqual(mail_from(self.strict, "")[0], 250)  # the null sender is exempt

    def test_unknown_domain_550_5_1_8(self):
        self.assertReply(mail_from(self.strict, "x@nosuch.example"), 550,
                         "5.1.8 <x@nosuch.example>: Sender address rejected: Domain not found")
        self.assertReply(mail_from(self.strict, "x@empty.example"), 550,
                         "5.1.8 <x@empty.example>: Sender address rejected: Domain not found")

    def test_dns_failure_is_temporary_450_4_1_8(self):
        self.assertReply(mail_from(self.strict, "x@bogus.example"), 450,
                         "4.1.8 <x@bogus.example>: Sender address rejected: Domain lookup failed")

    def test_null_mx_is_refused(self):
        self.assertReply(mail_from(self.strict, "x@nullmx.example"), 550, "5.7.27")

    def test_private_mail_exchangers_refused_when_on(self):
        for sender, words in (("x@local.example", "127.0.0.1 (loopback)"),
                              ("x@private.example", "10.1.2.3 (private-use)"),
                              ("x@ula.example", "fd00::25 (unique-local)"),
                              ("x@implicitprivate.example", "192.168.1.25 (private-use)")):
            reply = mail_from(self.strict, sender)
            self.assertReply(reply, 550, "5.7.1")
            self.assertIn(words.encode(), reply[1])
            self.assertIn(b"not globally routed", reply[1])
            self.assertEqual(mail_from(self.lenient, sender)[0], 250, sender)

    def test_rhsbl_listing_is_refused_with_the_list_named(self):
        self.assertReply(mail_from(self.strict, "x@spammer.example"), 554,
                         "5.7.1 <x@spammer.example>: Sender address rejected: domain "
                         "spammer.example is listed on rbl.example")
        self.assertEqual(mail_from(self.lenient, "x@spammer.example")[0], 250)

    def test_rhsbl_error_code_is_not_a_listing(self):
        self.assertEqual(mail_from(self.strict, "x@refused.example")[0], 250)
        self.assertIn("RHSBL rbl.example answered 127.255.255.254 for refused.example.rbl.example: "
                      "an error code, not a listing", self.strict.logs())

    def test_allow_list(self):
        self.assertEqual(mail_from(self.allow, "alice@GOOD.example")[0], 250)
        self.assertEqual(mail_from(self.allow, "anyone@aonly.example")[0], 250)
        self.assertReply(mail_from(self.allow, "bob@good.example"), 553,
                         "5.7.1 <bob@good.example>: Sender address rejected: not on the list")

    def test_trusted_clients_can_be_exempt(self):
        self.assertEqual(mail_from(self.exempt, "x@nosuch.example")[0], 250)
        self.assertEqual(mail_from(self.strict, "x@nosuch.example")[0], 550)

    def test_own_domain_senders_verified_by_a_probe_and_cached(self):
        self.assertEqual(mail_from(self.verify, "alice@own.example")[0], 250)
        self.assertReply(mail_from(self.verify, "reject-me@own.example"), 550,
                         "5.1.7 <reject-me@own.example>: Sender address rejected: undeliverable "
                         "address: 550 5.1.1")
        self.assertEqual(mail_from(self.verify, "alice@good.example")[0], 250)  # not own: no probe
        self.assertEqual(self.mx.recorder.messages, [])  # a probe sends no mail
        # With the MX gone, cached answers still hold; a new address cannot be verified: 450.
        self.mx.stop()
        type(self).mx = None
        self.assertEqual(mail_from(self.verify, "Alice@own.example")[0], 250)
        self.assertEqual(mail_from(self.verify, "reject-me@own.example")[0], 550)
        self.assertReply(mail_from(self.verify, "bob@own.example"), 450,
                         "4.1.7 <bob@own.example>: Sender address rejected: unverified address")


if __name__ == "__main__":
    unittest.main(verbosity=2)
