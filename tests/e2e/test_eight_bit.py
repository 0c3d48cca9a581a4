"""End to end: 8-bit mail and next hops without 8BITMIME (RFC 6152 §3, issue 21).

Static routes send seven.example to an aiosmtpd MX that does not offer 8BITMIME and
eight.example (and the senders' domain, where bounces go) to one that does; no DNS is involved.
The first must receive a 7-bit message whose parts decode (Python's email package, not GMime)
to the original contents; the second the stored bytes as they are, with BODY=8BITMIME; a message
that cannot be made 7-bit is returned with 5.6.3."""
import email
import email.policy
import json
import smtplib
import unittest

from harness import Relay, queued_id, strip_received, wait_for
from mx import MxServer, free_port_on

SEVEN, EIGHT = "127.0.0.70", "127.0.0.71"
SENDER = "alice@senders.example"

TEXT = ("Grüße aus Köln, ein Test mit Umlauten: äöü ÄÖÜ.\r\n"
        "Zweite Zeile, nur ASCII.\r\n"
        ".Eine Zeile mit Punkt am Anfang\r\n").encode()
# An 8-bit attachment that SMTP can carry as it is: no NUL, no bare CR or LF, short lines.
_OCTETS = bytes(b for b in ((i * 37 + 11) % 256 for i in range(4000)) if b not in (0, 10, 13))
BLOB = b"\r\n".join(_OCTETS[i:i + 70] for i in range(0, len(_OCTETS), 70))
MIXED = (b"From: Alice <alice@senders.example>\r\n"
         b"To: <user@seven.example>, <user@eight.example>\r\n"
         b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
         b"Message-ID: <8bit-1@senders.example>\r\n"
         b"MIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
         b"\r\n"
         b"--outer\r\n"
         b"Content-Type: multipart/alternative; boundary=\"alt\"\r\n"
         b"\r\n"
         b"--alt\r\n"
         b"Content-Type: text/plain; charset=utf-8\r\n"
         b"Content-Transfer-Encoding: 8bit\r\n"
         b"\r\n" + TEXT + b"\r\n"
         b"--alt\r\n"
         b"Content-Type: text/html; charset=us-ascii\r\n"
         b"\r\n"
         b"<p>Gr&uuml;&szlig;e aus K&ouml;ln</p>\r\n"
         b"--alt--\r\n"
         b"--outer\r\n"
         b"Content-Type: application/octet-stream; name=blob.bin\r\n"
         b"Content-Transfer-Encoding: 8bit\r\n"
         b"\r\n" + BLOB + b"\r\n"
         b"--outer--\r\n")
# No MIME header at all: text/plain of unknown charset (RFC 1428), as the relay documents.
OLD_STYLE = b"From: <alice@senders.example>\r\nSubject: old style\r\n\r\n" + TEXT
# 8-bit octets in the header, without SMTPUTF8: nothing can make that 7-bit.
RAW_HEADER = "From: <alice@senders.example>\r\nSubject: Grüße\r\n\r\nHallo.\r\n".encode()


def leaves(content):
    """Each leaf part's decoded content, in order."""
    m = email.message_from_bytes(content, policy=email.policy.default)
    return [p.get_payload(decode=True) for p in m.walk() if not p.is_multipart()]


def header_fields(content):
    head = content[:content.index(b"\r\n\r\n") + 2]
    return [f for f in head.replace(b"\r\n ", b" ").replace(b"\r\n\t", b"\t").split(b"\r\n") if f]


class EightBitTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port_on([SEVEN, EIGHT])
        cls.seven = MxServer(SEVEN, cls.port, eightbitmime=False).start()
        cls.eight = MxServer(EIGHT, cls.port).start()
        cls.relay = Relay(deliver=True, extra_toml=f"""
[retry]
min_backoff = "1h"
[routes]
"seven.example" = "[{SEVEN}]:{cls.port}"
"eight.example" = "[{EIGHT}]:{cls.port}"
"senders.example" = "[{EIGHT}]:{cls.port}"
""")
        try:
            cls.relay.start()
            cls.ids = {name: cls.send(content, rcpts) for name, content, rcpts in (
                ("mixed", MIXED, ["user@seven.example", "user@eight.example"]),
                ("old", OLD_STYLE, ["old@seven.example"]),
                ("raw-header", RAW_HEADER, ["raw@seven.example"]))}
            wait_for(lambda: all(r["state"] not in ("queued", "attempting", "deferred")
                                 for qid in cls.ids.values() for r in cls.state(qid)),
                     timeout=60, what="every recipient delivered or failed")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.relay.close()
        finally:
            cls.seven.stop()
            cls.eight.stop()

    @classmethod
    def send(cls, content, rcpts):
        with smtplib.SMTP("127.0.0.1", cls.relay.port, timeout=30) as c:
            c.ehlo("client.example")
            c.mail(SENDER, ["BODY=8BITMIME"])
            for r in rcpts:
                code, reply = c.rcpt(r)
                assert code == 250, reply
            code, reply = c.data(content)
            assert code == 250, reply
            return queued_id(reply)

    @classmethod
    def state(cls, qid):
        return json.loads(cls.relay.cli("queue", "show", qid, "--json").stdout)["recipients"]

    def only(self, server, rcpt):
        got = server.received_for(rcpt)
        self.assertEqual(len(got), 1, got)
        return got[0]

    def assert_seven_bit(self, content):
        self.assertTrue(all(b < 128 for b in content), "8-bit octets arrived")
        self.assertTrue(content.endswith(b"\r\n"))
        for line in content[:-2].split(b"\r\n"):
            self.assertNotIn(b"\n", line)
            self.assertNotIn(b"\r", line)
            self.assertLessEqual(len(line), 998)

    def test_next_hop_without_8bitmime_gets_a_7bit_message_that_decodes_to_the_original(self):
        got = self.only(self.seven, "user@seven.example")
        self.assertNotIn("BODY=8BITMIME", [o.upper() for o in got["mail_options"]])
        self.assert_seven_bit(got["content"])
        self.assertEqual(leaves(got["content"]), leaves(MIXED))
        self.assertEqual(leaves(got["content"])[0], TEXT)
        self.assertEqual(leaves(got["content"])[2], BLOB)
        # Header fields are kept byte for byte; the 7-bit part too.
        stored = self.relay.raw(self.ids["mixed"])
        self.assertEqual(header_fields(got["content"]), header_fields(stored))
        self.assertIn(b"--alt\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n"
                      b"<p>Gr&uuml;&szlig;e aus K&ouml;ln</p>\r\n--alt--\r\n", got["content"])
        self.assertIn(b"Content-Type: text/plain; charset=utf-8\r\n"
                      b"Content-Transfer-Encoding: quoted-printable\r\n\r\n", got["content"])
        self.assertIn(b"Content-Type: application/octet-stream; name=blob.bin\r\n"
                      b"Content-Transfer-Encoding: base64\r\n\r\n", got["content"])
        self.assertRegex(self.relay.logs(),
                         rf"{self.ids['mixed']}: converted to 7bit for \S*\[{SEVEN}\]")

    def test_next_hop_with_8bitmime_gets_the_original_bytes(self):
        got = self.only(self.eight, "user@eight.example")
        self.assertIn("BODY=8BITMIME", [o.upper() for o in got["mail_options"]])
        self.assertEqual(got["content"], self.relay.raw(self.ids["mixed"]))
        self.assertEqual(strip_received(got["content"]), MIXED)
        self.assertNotRegex(self.relay.logs(),
                            rf"{self.ids['mixed']}: converted to 7bit for \S*\[{EIGHT}\]")

    def test_message_without_mime_headers_becomes_text_of_unknown_charset(self):
        got = self.only(self.seven, "old@seven.example")
        self.assert_seven_bit(got["content"])
        m = email.message_from_bytes(got["content"], policy=email.policy.default)
        self.assertEqual(m["MIME-Version"], "1.0")
        self.assertEqual(m.get_content_type(), "text/plain")
        self.assertEqual(m.get_param("charset"), "unknown-8bit")
        self.assertEqual(m["Subject"], "old style")
        self.assertEqual(leaves(got["content"]), [TEXT])

    def test_8bit_header_to_a_next_hop_without_8bitmime_bounces_5_6_3(self):
        rcpt = self.state(self.ids["raw-header"])[0]
        self.assertEqual((rcpt["state"], rcpt["last_status"]), ("failed", "5.6.3"), rcpt)
        self.assertIn("message has 8-bit content that cannot be converted to 7-bit for ",
                      rcpt["last_reply"])
        self.assertIn("which does not offer 8BITMIME", rcpt["last_reply"])
        self.assertEqual(self.seven.received_for("raw@seven.example"), [])
        wait_for(lambda: self.eight.received_for(SENDER), what="the bounce")
        bounce = self.eight.received_for(SENDER)[0]
        self.assertEqual(bounce["from"], "<>")
        self.assertIn(b"Status: 5.6.3", bounce["content"])
        self.assertIn(b"raw@seven.example", bounce["content"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
