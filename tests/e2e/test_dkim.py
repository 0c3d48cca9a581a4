"""DKIM signing (issue 25) on the real daemon in the DNSSEC world, checked by two independent
verifiers from Debian: python3-dkim (dkimpy) and Perl's Mail::DKIM (RSA only: Debian 12's has no
Ed25519). Keys are made by
`danerelay dkim keygen` (RSA 2048 and Ed25519 for one domain, an RSA key for danerelay's own
notices), their records published in signed zones and checked by `danerelay dkim check`.
An authenticated submission is delivered with both signatures valid; a header changed after
delivery breaks them; a From domain without a key and a trusted client under sources = ["auth"]
go unsigned with a log line each; a bounce is signed for the notices domain. Header privacy
([privacy], item 5): an authenticated submission's Received header names no client and its
X-Originating-IP and User-Agent are gone before it is signed; a trusted client's stays as it is.
Archive copies ([archive], item 6): every submission also goes to the archive mailbox (and
signer.example's mail to its own one), as an envelope recipient with NOTIFY=NEVER that no
header names; `queue show` reports its delivery; a bounce never names it."""
import os
import re
import smtplib
import ssl
import subprocess
import time
import unittest

from dnsworld import NSD_ADDRESS, DnsWorld
from harness import DANERELAY, Relay, queued_id, wait_for
from mx import MxServer, free_port_on, self_signed
from test_auth import passwd
from world_case import WorldCase

IPS = {"dest": "127.0.0.101", "inbox": "127.0.0.102", "trusted": "127.0.0.103"}
DOMAIN, NOTICES = "signer.example", "notices.example"
HERE = os.path.dirname(os.path.abspath(__file__))


def keygen(workdir, domain, selector, algorithm):
    """`danerelay dkim keygen`; returns the key file and the record text to publish."""
    conf = os.path.join(workdir, "keygen.toml")
    with open(conf, "w") as f:
        f.write('[server]\nhostname = "relay.test"\n')
    key_file = os.path.join(workdir, f"{domain}.{selector}.pem")
    r = subprocess.run([DANERELAY, "--config", conf, "dkim", "keygen", domain, "--selector",
                        selector, "--algorithm", algorithm, "--key-file", key_file],
                       capture_output=True, text=True, timeout=60, check=True)
    assert oct(os.stat(key_file).st_mode & 0o777) == "0o600", "the key must be 0600"
    line = next(x for x in r.stdout.splitlines() if "._domainkey." in x)
    assert line.startswith(f"{selector}._domainkey.{domain}. IN TXT ("), line
    text = "".join(re.findall(r'"([^"]*)"', line))
    return key_file, text


def txt_strings(text):
    return " ".join(f'"{text[i:i + 200]}"' for i in range(0, len(text), 200))


def python_verify(message, nsd_port, clock_offset=0):
    """python3-dkim's verdict on each DKIM-Signature, asking only the world's name server.
    `clock_offset`: seconds the signer's clock ran ahead (a daemon under libfaketime), so that
    dkimpy's check that t= is not in the future judges by the signer's time."""
    import dkim  # python3-dkim
    from unittest import mock

    def dns(name, timeout=5):
        out = subprocess.run(["dig", "+short", "+norecurse", "-p", str(nsd_port),
                              f"@{NSD_ADDRESS}", name.decode().rstrip("."), "TXT"],
                             capture_output=True, text=True, timeout=20).stdout
        return "".join(re.findall(r'"([^"]*)"', out)).encode()

    def one(i):
        try:
            return dkim.DKIM(message).verify(idx=i, dnsfunc=dns)
        except dkim.ValidationError:  # a body hash mismatch is raised, not returned
            return False

    count = len([h for h in dkim.DKIM(message).headers if h[0].lower() == b"dkim-signature"])
    real = time.time
    with mock.patch.object(dkim.time, "time", lambda: real() + clock_offset):
        return [one(i) for i in range(count)]


def perl_verify(message, nsd_port):
    """Mail::DKIM's "RESULT d= s= a=" per signature, and its details."""
    r = subprocess.run(["perl", os.path.join(HERE, "dkim_verify.pl"), NSD_ADDRESS, str(nsd_port)],
                       input=message, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().splitlines(), r.stderr.decode().splitlines()


class DkimTest(WorldCase):
    @classmethod
    def build(cls):
        certs = cls.scratch("danerelay-dkim-")
        port = free_port_on(list(IPS.values()))
        keys = {sel: keygen(cls.tmp, d, sel, alg) for sel, d, alg in (
            ("rsa", DOMAIN, "rsa2048"), ("ed", DOMAIN, "ed25519"),
            ("bounces", NOTICES, "rsa2048"), ("unpublished", "unpublished.example", "ed25519"))}
        w = cls.world = DnsWorld(cls.tmp)
        w.zone("dest.example.").mx(IPS["dest"], port=port)
        w.zone("nokey.example.").mx(IPS["inbox"], port=port)
        signer = w.zone(f"{DOMAIN}.").mx(IPS["inbox"], port=port)
        notices = w.zone(f"{NOTICES}.")
        for sel, (_, text) in keys.items():
            if sel == "unpublished":
                continue  # configured, never published: the pre-flight check must say so
            (notices if sel == "bounces" else signer).add(
                f"{sel}._domainkey TXT {txt_strings(text)}")
        w.start()
        cls.nsd_port = w.port
        crt, key = self_signed(certs, "mx.dest.example")
        cls.servers["dest"] = MxServer(IPS["dest"], port, crt, key).start()
        cls.servers["inbox"] = MxServer(IPS["inbox"], port, crt, key).start()
        domain_of = {"bounces": NOTICES, "unpublished": "unpublished.example"}
        dkim_keys = "".join(
            f'[[dkim.key]]\ndomain = "{domain_of.get(sel, DOMAIN)}"\n'
            f'selector = "{sel}"\nkey_file = "{path}"\n' for sel, (path, _) in keys.items())
        cls.relay = Relay(deliver=True, starttls=True, trusted=[f"{IPS['trusted']}/32"],
                          extra_toml=w.toml() + f"""
[auth]
users_file = "users"
[auth.senders]
sales = ["@sales.{DOMAIN}"]
[delivery]
port = {port}
[archive]
recipient = "archive@{DOMAIN}"
"@{DOMAIN}" = "signer-archive@{DOMAIN}"
[privacy]
hide_client = ["auth"]
remove_headers = ["X-Originating-IP", "User-Agent"]
[dkim]
notices_domain = "{NOTICES}"
{dkim_keys}""")
        passwd(cls.relay, "alice", "pw-alice")
        passwd(cls.relay, "sales", "pw-sales")
        cls.relay.start()
        cls.ctx = ssl.create_default_context(cafile=cls.relay.cert)
        cls.ctx.check_hostname = False

    def submit(self, from_domain, rcpt, authenticated=True, subject="signed", user="alice",
               sender=None):
        msg = (f"From: Alice <alice@{from_domain}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n"
               f"X-Originating-IP: [10.20.30.40]\r\nUser-Agent: Mailer/1.0\r\n (pc17.corp)\r\n"
               f"Date: Sat, 05 Dec 2026 20:00:00 +0000\r\nMessage-ID: <{time.time()}@x>\r\n"
               f"\r\nHello,\r\n\r\n  a line with  spaces \t\r\n.dot\r\n").encode()
        if authenticated:
            c = smtplib.SMTP("127.0.0.1", self.relay.tls_port, timeout=30)
            c.ehlo("client.example")
            c.starttls(context=self.ctx)
            c.ehlo("client.example")
            c.login(user, f"pw-{user}")
        else:
            c = smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30,
                             source_address=(IPS["trusted"], 0))
            c.ehlo("trusted.example")
        with c:
            c.mail(sender or f"alice@{from_domain}")
            code, _ = c.rcpt(rcpt)
            self.assertEqual(code, 250)
            code, reply = c.data(msg)
            self.assertEqual(code, 250, reply)
        return queued_id(reply)

    def delivered(self, server, rcpt):
        wait_for(lambda: self.servers[server].received_for(rcpt), timeout=60,
                 what=f"delivery to {rcpt}")
        return self.servers[server].received_for(rcpt)[0]["content"]

    def python_verify(self, message):
        return python_verify(message, self.nsd_port)

    def perl_verify(self, message, details=False):
        results, why = perl_verify(message, self.nsd_port)
        return (results, why) if details else results

    def test_authenticated_mail_has_rsa_and_ed25519_signatures_both_verifiers_accept(self):
        qid = self.submit(DOMAIN, "bob@dest.example")
        raw = self.relay.raw(qid)
        self.assertEqual(raw.count(b"DKIM-Signature:"), 2, "queue show --raw has the signatures")
        content = self.delivered("dest", "bob@dest.example")
        self.assertEqual(self.python_verify(content), [True, True])
        # Debian 12's Mail::DKIM (1.20230212) has no Ed25519 (RFC 8463) code: it passes the RSA
        # signature and calls the other one unsupported, not failed.
        results, details = self.perl_verify(content, details=True)
        self.assertEqual(sorted(results), [f"invalid d={DOMAIN} s=ed a=ed25519-sha256",
                                           f"pass d={DOMAIN} s=rsa a=rsa-sha256"])
        self.assertIn("invalid (unsupported algorithm ed25519-sha256)", details)
        self.assertIn(f"{qid}: DKIM-Signature field added", self.relay.logs())
        # Changed after delivery: a signed header field, then the body.
        for changed in (content.replace(b"Subject: signed", b"Subject: changed"),
                        content.replace(b"Hello,", b"Hallo,")):
            self.assertEqual(self.python_verify(changed), [False, False])
            self.assertIn(f"fail d={DOMAIN} s=rsa a=rsa-sha256", self.perl_verify(changed))

    def test_authenticated_client_is_hidden_and_private_headers_removed_before_signing(self):
        self.submit(DOMAIN, "erin@dest.example")
        content = self.delivered("dest", "erin@dest.example")
        header = content.split(b"\r\n\r\n", 1)[0]
        self.assertIn(b"Received: from client.invalid\r\n", header)
        self.assertIn(b"with ESMTPSA id", header)
        for private in (b"127.0.0.1", b"client.example", b"X-Originating-IP", b"10.20.30.40",
                        b"User-Agent", b"pc17.corp"):
            self.assertNotIn(private, header)
        self.assertEqual(self.python_verify(content), [True, True])

    def test_trusted_client_is_not_hidden_under_hide_client_auth(self):
        self.submit("nokey.example", "frank@dest.example", authenticated=False)
        content = self.delivered("dest", "frank@dest.example")
        self.assertIn(f"Received: from trusted.example (unknown [{IPS['trusted']}])".encode(),
                      content)
        self.assertNotIn(b"X-Originating-IP", content)  # remove_headers applies to every client

    def test_archive_copies_go_to_both_archives_unnamed_and_are_reported(self):
        qid = self.submit(DOMAIN, "gina@dest.example", subject="archived")
        original = self.delivered("dest", "gina@dest.example")
        for box in (f"archive@{DOMAIN}", f"signer-archive@{DOMAIN}"):
            copy = self.delivered("inbox", box)
            self.assertIn(b"Subject: archived", copy)
            self.assertNotIn(b"archive@", copy)  # in the envelope only
        self.assertEqual(self.python_verify(copy), [True, True])
        self.assertNotIn(b"archive@", original)
        wait_for(lambda: all(r["state"] == "delivered"
                             for r in self.relay.show_json(qid)["recipients"]),
                 what="every recipient delivered")
        shown = {r["address"]: r for r in self.relay.show_json(qid)["recipients"]}
        self.assertEqual(set(shown), {"gina@dest.example", f"archive@{DOMAIN}",
                                      f"signer-archive@{DOMAIN}"})
        self.assertEqual(shown[f"archive@{DOMAIN}"]["notify"], "NEVER")

    def test_from_domain_without_key_goes_unsigned_with_a_log_line(self):
        qid = self.submit("nokey.example", "carol@dest.example")
        content = self.delivered("dest", "carol@dest.example")
        self.assertNotIn(b"DKIM-Signature", content)
        self.assertIn(f"{qid}: not DKIM-signed (no_key): no key for the From domain nokey.example",
                      self.relay.logs())

    def test_user_is_not_signed_for_a_from_its_auth_senders_do_not_allow(self):
        # [auth.senders] lets "sales" use @sales.<DOMAIN> only: the envelope passes, but the
        # header From alice@<DOMAIN> must not get <DOMAIN>'s signature (DMARC would pass).
        qid = self.submit(DOMAIN, "ivan@dest.example", user="sales",
                          sender=f"team@sales.{DOMAIN}")
        content = self.delivered("dest", "ivan@dest.example")
        self.assertNotIn(b"DKIM-Signature", content)
        self.assertIn(f"{qid}: not DKIM-signed (not_permitted): header From alice@{DOMAIN} is "
                      "not among the senders [auth] allows user sales", self.relay.logs())

    def test_trusted_client_without_auth_goes_unsigned_under_sources_auth(self):
        qid = self.submit(DOMAIN, "dave@dest.example", authenticated=False)
        content = self.delivered("dest", "dave@dest.example")
        self.assertNotIn(b"DKIM-Signature", content)
        self.assertIn(f"{qid}: not DKIM-signed (not_source)", self.relay.logs())

    def test_bounce_is_signed_for_the_notices_domain(self):
        self.submit(DOMAIN, "reject-me@dest.example", subject="to bounce")
        bounce = self.delivered("inbox", f"alice@{DOMAIN}")
        self.assertIn(b"multipart/report", bounce)
        self.assertNotIn(b"archive@", bounce)  # NOTIFY=NEVER: the archive is never reported
        self.assertEqual(self.python_verify(bounce), [True])
        self.assertEqual(self.perl_verify(bounce), [f"pass d={NOTICES} s=bounces a=rsa-sha256"])
        # Its From is MAILER-DAEMON@relay.test, which d=notices.example does not align with:
        # the daemon said so at start.
        self.assertIn(f"danerelay's own mail is From MAILER-DAEMON@relay.test but signed "
                      f"d={NOTICES}", self.relay.logs())

    def test_preflight_check_warns_about_an_unpublished_record(self):
        wait_for(lambda: "pre-flight: DKIM record unpublished._domainkey" in self.relay.logs(),
                 what="the pre-flight DKIM check")
        logs = self.relay.logs()
        self.assertIn("warning: pre-flight: DKIM record unpublished._domainkey.unpublished.example "
                      "does not match the key", logs)
        self.assertIn(f"pre-flight: DKIM record rsa._domainkey.{DOMAIN} matches", logs)

    def test_dkim_check_finds_the_published_records_secure(self):
        r = self.relay.cli("dkim", "check", DOMAIN)
        out = r.stdout.decode()
        self.assertIn(f"rsa._domainkey.{DOMAIN}: matches", out)
        self.assertIn(f"ed._domainkey.{DOMAIN}: matches", out)
        self.assertEqual(out.count("DNSSEC: secure"), 2, out)
        self.assertEqual(self.relay.cli("dkim", "check", NOTICES).returncode, 0)
        r = self.relay.cli("dkim", "check", "unpublished.example", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"unpublished._domainkey.unpublished.example: no record", r.stdout)
        r = self.relay.cli("dkim", "check", "nokey.example", check=False)
        self.assertEqual(r.returncode, 3)
        self.assertIn(b"no [[dkim.key]] for nokey.example", r.stdout)


if __name__ == "__main__":
    unittest.main()
