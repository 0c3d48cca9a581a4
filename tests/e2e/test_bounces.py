"""End to end: the notices danerelayd sends back (issue 21), as the sender's MX receives them,
parsed with Python's email package and again with Perl's MIME-tools (mime_parts.pl).

- SMTPUTF8 mail refused by the next hop comes back as a global notice (RFC 6533 §6), sent with
  SMTPUTF8 and BODY=8BITMIME;
- a failure that is our own finding (a refused connection, until the message expires) names
  no Remote-MTA and no "smtp;" diagnostic (RFC 3464 §2.3.5-6);
- REQUIRETLS mail (RFC 8689 §5): 5.7.30 where the next hop does not offer REQUIRETLS, 5.7.10
  where no authenticated TLS can be had; the notice comes back with REQUIRETLS and without the
  body."""
import base64
import email
import email.parser
import email.policy
import json
import os
import smtplib
import ssl
import subprocess
import time
import unittest

from dnsworld import DnsWorld
from harness import Relay, queued_id
from mx import MxServer, free_port_on, self_signed, tlsa_3_1_1
from world_case import WorldCase

IPS = {name: f"127.0.0.{n}" for n, name in enumerate(["dest", "noreq", "senders", "dead"],
                                                      start=110)}
SENDER = "alice@senders.example"
JOERG = "reject.j\u00f6rg@dest.example"  # the MX refuses local parts starting with "reject"
MIME_PARTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mime_parts.pl")


def field_blocks(payload):
    """The field blocks of a (global-)delivery-status body, each parsed as a header section."""
    text = payload.replace(b"\r\n", b"\n").strip(b"\n")
    parser = email.parser.BytesHeaderParser(policy=email.policy.default)
    return [parser.parsebytes(block + b"\n") for block in text.split(b"\n\n")]


class BounceTest(WorldCase):
    @classmethod
    def build(cls):
        certs = cls.scratch("danerelay-bounces-")
        port = free_port_on(list(IPS.values()))
        senders_crt, senders_key = self_signed(certs, "mx.senders.example")
        noreq_crt, noreq_key = self_signed(certs, "mx.noreq.example")
        dest_crt, dest_key = self_signed(certs, "mx.dest.example")

        w = cls.world = DnsWorld(cls.tmp)
        w.zone("dest.example.").mx(IPS["dest"])
        # DANE-verified, so that a REQUIRETLS notice can go there (and nothing else blocks it).
        w.zone("senders.example.").mx(IPS["senders"], tlsa_3_1_1(senders_crt), port)
        w.zone("noreq.example.").mx(IPS["noreq"], tlsa_3_1_1(noreq_crt), port)
        w.zone("plain.example.", "unsigned").mx(IPS["noreq"])
        w.zone("dead.example.").mx(IPS["dead"])  # nobody listens
        w.start()

        cls.servers.update({
            "dest": MxServer(IPS["dest"], port, dest_crt, dest_key, smtputf8=True),
            "noreq": MxServer(IPS["noreq"], port, noreq_crt, noreq_key),
            "senders": MxServer(IPS["senders"], port, senders_crt, senders_key, smtputf8=True,
                                requiretls=True),
        })
        for s in cls.servers.values():
            s.start()

        # A short lifetime, so that the refused connections expire within the test.
        cls.relay = Relay(deliver=True, starttls=True, extra_toml=w.toml() + f"""
[delivery]
port = {port}
connect_timeout = "5s"
[retry]
min_backoff = "1s"
max_backoff = "1s"
max_lifetime = "6s"
""").start()

        cls.ids = {}
        with smtplib.SMTP("127.0.0.1", cls.relay.port, timeout=30) as c:
            c.ehlo("test.example")
            c.mail(SENDER, ["SMTPUTF8", "BODY=8BITMIME"])
            c.rcpt(JOERG, ["ORCPT=utf-8;" + JOERG])
            code, reply = c.data("Subject: Gr\u00fc\u00dfe\r\nFrom: <alice@senders.example>\r\n"
                                 "\r\nHallo J\u00f6rg.\r\n".encode())
            assert code == 250, reply
            cls.ids["utf8"] = queued_id(reply)
            c.mail(SENDER)
            c.rcpt("user@dead.example")
            code, reply = c.data(b"Subject: to nowhere\r\n\r\nx\r\n")
            assert code == 250, reply
            cls.ids["dead"] = queued_id(reply)
        # REQUIRETLS is offered inside TLS only.
        for domain in ("noreq", "plain"):
            with smtplib.SMTP("127.0.0.1", cls.relay.tls_port, timeout=30) as c:
                c.ehlo("test.example")
                c.starttls(context=ssl._create_unverified_context())
                c.ehlo("test.example")
                c.mail(SENDER, ["REQUIRETLS"])
                c.rcpt(f"user@{domain}.example")
                code, reply = c.data(b"Subject: private\r\n\r\nThe confidential body.\r\n")
                assert code == 250, reply
                cls.ids[domain] = queued_id(reply)

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(cls.servers["senders"].received_for(SENDER)) >= 4:
                break
            time.sleep(0.3)

    def notice(self, key):
        """The one notice about ids[key] at the sender's MX: (what arrived, the parsed message,
        its three parts, the per-message fields, the per-recipient blocks), each part checked
        by the second parser too."""
        found = []
        for got in self.servers["senders"].received_for(SENDER):
            msg = email.message_from_bytes(got["content"], policy=email.policy.default)
            self.assertEqual(msg.get_content_type(), "multipart/report")
            parts = msg.get_payload()
            self.assertEqual(len(parts), 3)
            # RFC 6522 §3: report-type is the second part's subtype (global-delivery-status
            # in a global notice, RFC 6533 §6).
            self.assertEqual(msg.get_param("report-type"), parts[1].get_content_subtype())
            # A message/* part other than delivery-status is parsed as one message; its raw
            # text is what the second parser reads too.
            raw = self.second_parser(got["content"])
            blocks = field_blocks(base64.b64decode(raw["parts"][1]["body"]))
            if blocks[0]["X-Danerelay-Queue-ID"] == self.ids[key]:
                found.append((got, msg, parts, raw, blocks[0], blocks[1:]))
        self.assertEqual(len(found), 1, [f[0]["content"][:400] for f in found])
        return found[0]

    def second_parser(self, content):
        r = subprocess.run(["perl", MIME_PARTS], input=content, capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        tree = json.loads(r.stdout)
        self.assertEqual(tree["type"], "multipart/report")
        self.assertEqual(len(tree["parts"]), 3)
        self.assertEqual("message/" + tree["report_type"], tree["parts"][1]["type"])
        return tree

    def test_smtputf8_mail_comes_back_as_a_global_notice(self):
        got, msg, (human, status, original), raw, fields, rcpts = self.notice("utf8")
        # RFC 6533 §6: the report and the returned message are the global types.
        self.assertEqual(status.get_content_type(), "message/global-delivery-status")
        self.assertEqual(original.get_content_type(), "message/global")
        self.assertEqual([p["type"] for p in raw["parts"]],
                         ["text/plain", "message/global-delivery-status", "message/global"])
        self.assertEqual(len(rcpts), 1)
        r = rcpts[0]
        self.assertEqual(r["Final-Recipient"], "utf-8; " + JOERG)
        self.assertEqual(r["Original-Recipient"], "utf-8; " + JOERG)
        self.assertEqual((r["Action"], r["Status"]), ("failed", "5.1.1"))
        # The refusal is the remote's reply.
        self.assertEqual(r["Remote-MTA"], "dns; mx.dest.example")
        self.assertTrue(r["Diagnostic-Code"].startswith("smtp; 550 5.1.1"), r["Diagnostic-Code"])
        # The text part is UTF-8, labelled so, and names the recipient as it is.
        self.assertEqual(human.get_content_type(), "text/plain")
        self.assertEqual(human.get_content_charset(), "utf-8")
        self.assertEqual(human["Content-Transfer-Encoding"], "8bit")
        self.assertIn(f"<{JOERG}>", human.get_content())
        self.assertEqual((raw["parts"][0]["charset"], raw["parts"][0]["encoding"]),
                         ("utf-8", "8bit"))
        self.assertIn(f"<{JOERG}>".encode(), base64.b64decode(raw["parts"][0]["body"]))
        self.assertIn("Gr\u00fc\u00dfe".encode(), base64.b64decode(raw["parts"][2]["body"]))
        # Sent as it needs to be (RFC 6531, RFC 6152).
        self.assertIn("SMTPUTF8", got["mail_options"])
        self.assertIn("BODY=8BITMIME", got["mail_options"])

    def test_a_failure_of_our_own_names_no_remote_mta(self):
        rcpt = json.loads(self.relay.cli("queue", "show", self.ids["dead"], "--json").stdout)[
            "recipients"][0]
        self.assertEqual((rcpt["state"], rcpt["last_status"]), ("expired", "4.4.1"), rcpt)
        got, msg, (human, status, original), raw, fields, rcpts = self.notice("dead")
        # ASCII mail: the RFC 3464 types, unchanged.
        self.assertEqual(status.get_content_type(), "message/delivery-status")
        self.assertEqual(original.get_content_type(), "message/rfc822")
        self.assertEqual([p["type"] for p in raw["parts"]],
                         ["text/plain", "message/delivery-status", "message/rfc822"])
        r = rcpts[0]
        self.assertEqual(r["Final-Recipient"], "rfc822; user@dead.example")
        self.assertEqual((r["Action"], r["Status"]), ("failed", "4.4.1"))
        # mx.dead.example was tried, but it never answered: "Connection refused" is ours.
        self.assertIsNone(r["Remote-MTA"])
        self.assertTrue(r["Diagnostic-Code"].startswith("X-Danerelay; connect to mx.dead.example"),
                        r["Diagnostic-Code"])
        self.assertNotIn("said:", human.get_content())
        self.assertNotIn("SMTPUTF8", got["mail_options"])

    def test_requiretls_mail_without_requiretls_at_the_next_hop_is_5_7_30(self):
        got, msg, (human, status, original), raw, fields, rcpts = self.notice("noreq")
        r = rcpts[0]
        # RFC 8689 §5: "REQUIRETLS not supported by server".
        self.assertEqual((r["Action"], r["Status"]), ("failed", "5.7.30"))
        self.assertIsNone(r["Remote-MTA"])  # found in its EHLO reply, not its reply to us
        self.assertTrue(r["Diagnostic-Code"].startswith("X-Danerelay; REQUIRETLS"))
        self.check_requiretls_notice(got, original, raw)

    def test_requiretls_mail_without_authenticated_tls_is_5_7_10(self):
        got, msg, (human, status, original), raw, fields, rcpts = self.notice("plain")
        r = rcpts[0]
        # RFC 8689 §5: "Unable to establish TLS-protected SMTP session".
        self.assertEqual((r["Action"], r["Status"]), ("failed", "5.7.10"))
        self.assertIsNone(r["Remote-MTA"])
        self.check_requiretls_notice(got, original, raw)

    def check_requiretls_notice(self, got, original, raw):
        # RFC 8689 §5: the notice is sent with REQUIRETLS (so over DANE-verified TLS to a hop
        # that offers it), and carries the headers only.
        self.assertTrue(got["tls"])
        self.assertTrue(got["requiretls"])
        self.assertEqual(original.get_content_type(), "text/rfc822-headers")
        self.assertEqual(raw["parts"][2]["type"], "text/rfc822-headers")
        self.assertIn("Subject: private", original.get_content())
        self.assertNotIn(b"confidential", got["content"])


if __name__ == "__main__":
    unittest.main()
