"""End to end: TLS-RPT reports sent by the daemon (RFC 8460 §5), issue 12.

A day of deliveries under real time to domains that publish _smtp._tls TXT records (a DANE
domain, an MTA-STS domain whose MX shows a certificate for another name, a domain whose policy
cannot be fetched, one whose policy is invalid) and to one without; then the daemon is started
again under libfaketime one day later, so that its daily run reports that day: by mail through
its own queue to the rua mailbox (reports.example's MX in the test world) and by an HTTPS POST
to a collector with a certificate from the test CA. The collector refuses the first POST (503):
the daemon is restarted before its next try, which the new process makes; a URI answered 400 is
given up. The reports are checked field by field against RFC 8460 §4 and §5.3; a further start
sends nothing twice."""
import email
import email.policy
import gzip
import ipaddress
import json
import os
import re
import smtplib
import tempfile
import time
import unittest
from datetime import datetime, timedelta, timezone

from dnsworld import DnsWorld
from https_servers import PolicyServer, ReportCollector
from harness import Relay, queued_id, wait_for
from mx import MxServer, free_port_on, private_ca, self_signed, signed_by, tlsa_3_1_1
from test_dkim import keygen, perl_verify, python_verify, txt_strings
from world_case import WorldCase

IPS = {name: f"127.0.0.{n}" for n, name in enumerate(
    ["dane", "sts", "plain", "inbox", "policy", "collector", "badpolicy"], start=61)}
FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
CONTACT = "tls-reports@relay.test"
# xn--rpt-bcher-u9a: rpt-bücher, mailed to in U-labels, reported in A-labels (RFC 8460 §3).
IDN = "xn--rpt-bcher-u9a"
REPORTED = ["rpt-dane", "rpt-sts", "rpt-fetch", "rpt-invalid", "rpt-webpki", IDN, "rpt-tlsa"]
# Report mails (RFC 8460 §5.3) to mailboxes behind broken DANE: no STARTTLS where TLSA records
# demand it. Opportunistic DANE: the report still goes out; mandatory DANE: it waits. So does a
# report to a domain whose [tls_policy] entry requires STARTTLS ("encrypt"): the operator's table.
BROKEN, MANDATORY = "broken-reports.example", "mandatory-reports.example"
ENCRYPT = "encrypt-reports.example"
MANY, MAX_RUA = 50, 5

# RFC 8460 §4.4: the fields a report, a policy entry, a summary and a failure detail may have.
TOP_KEYS = {"organization-name", "date-range", "contact-info", "report-id", "policies"}
POLICY_KEYS = {"policy-type", "policy-string", "policy-domain", "mx-host"}
DETAIL_KEYS = {"result-type", "sending-mta-ip", "receiving-mx-hostname", "receiving-mx-helo",
               "receiving-ip", "failed-session-count", "additional-information",
               "failure-reason-code"}
RESULT_TYPES = {"starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
                "certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid",
                "dane-required", "sts-policy-fetch-error", "sts-policy-invalid",
                "sts-webpki-invalid"}


class TlsRptTest(WorldCase):
    @classmethod
    def build(cls):
        cls.tmp = tempfile.mkdtemp(prefix="danerelay-tlsrpt-")
        certs = os.path.join(cls.tmp, "certs")
        os.makedirs(certs)
        port = cls.port = free_port_on(list(IPS.values()))
        ca_crt, ca_key = private_ca(certs)
        dane_crt, dane_key = self_signed(certs, "mx.rpt-dane.example")
        cls.dane_tlsa = tlsa_3_1_1(dane_crt)
        rua = (f"mailto:tlsrpt@reports.example,"
               f"https://collector.reports.example:{port}/v1/tlsrpt")

        w = cls.world = DnsWorld(cls.tmp)
        w.zone("rpt-dane.example.").add("@ MX 10 mx").add(f"mx A {IPS['dane']}") \
            .add(f"_{port}._tcp.mx TLSA {cls.dane_tlsa}") \
            .add(f'_smtp._tls TXT "v=TLSRPTv1; rua={rua}"')
        for d, mx in (("rpt-sts", "sts"), ("rpt-fetch", "plain"), ("rpt-invalid", "plain"),
                      ("rpt-webpki", "plain")):
            policy_ip = IPS["badpolicy" if d == "rpt-webpki" else "policy"]
            # rpt-invalid also names a URI the collector answers with 400.
            extra = (f",https://collector.reports.example:{port}/v1/reject"
                     if d == "rpt-invalid" else "")
            w.zone(f"{d}.example.", "unsigned").add("@ MX 10 mx").add(f"mx A {IPS[mx]}") \
                .add(f"mta-sts A {policy_ip}").add('_mta-sts TXT "v=STSv1; id=1;"') \
                .add(f'_smtp._tls TXT "v=TLSRPTv1; rua={rua}{extra}"')
        w.zone(f"{IDN}.example.", "unsigned").add("@ MX 10 mx").add(f"mx A {IPS['plain']}") \
            .add(f'_smtp._tls TXT "v=TLSRPTv1; rua={rua}"')
        # RFC 8460 §4.3.1: TLSA records, none usable (PKIX-EE only): tlsa-invalid.
        w.zone("rpt-tlsa.example.").add("@ MX 10 mx").add(f"mx A {IPS['plain']}") \
            .add(f"_{port}._tcp.mx TLSA 1 1 1 {cls.dane_tlsa.split()[-1]}") \
            .add(f'_smtp._tls TXT "v=TLSRPTv1; rua={rua}"')
        for d, inbox in (("rpt-broken", BROKEN), ("rpt-mandatory", MANDATORY),
                         ("rpt-encrypt", ENCRYPT)):
            w.zone(f"{d}.example.", "unsigned").add("@ MX 10 mx").add(f"mx A {IPS['plain']}") \
                .add(f'_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tlsrpt@{inbox}"')
            w.zone(f"{inbox}.").add("@ MX 10 mx").add(f"mx A {IPS['inbox']}") \
                .add(f"_{port}._tcp.mx TLSA {cls.dane_tlsa}")
        w.zone("rpt-none.example.", "unsigned").add("@ MX 10 mx").add(f"mx A {IPS['plain']}")
        # Issue 20: 50 mailto: URIs (in TXT strings of at most 255 octets); only the first
        # MAX_RUA are used.
        many = ",".join(f"mailto:many{n:02}@reports.example" for n in range(MANY))
        text = f"v=TLSRPTv1; rua={many}"
        strings = " ".join(f'"{text[i:i + 200]}"' for i in range(0, len(text), 200))
        w.zone("rpt-many.example.", "unsigned").add("@ MX 10 mx").add(f"mx A {IPS['plain']}") \
            .add(f"_smtp._tls TXT {strings}")
        w.zone("reports.example.", "unsigned").add("@ MX 10 mx").add(f"mx A {IPS['inbox']}") \
            .add(f"collector A {IPS['collector']}")
        # RFC 8460 §3: reports are DKIM-signed, here for rpt-signing.example.
        cls.dkim_key, dkim_text = keygen(cls.tmp, "rpt-signing.example", "reports", "rsa2048")
        w.zone("rpt-signing.example.").add(f"reports._domainkey TXT {txt_strings(dkim_text)}")
        w.start()

        policy_chain, policy_key = signed_by(
            certs, "mta-sts.rpt-sts.example", ca_crt, ca_key,
            also=["mta-sts.rpt-fetch.example", "mta-sts.rpt-invalid.example"])
        cls.servers["policy"] = PolicyServer(IPS["policy"], port, policy_chain, policy_key, {
            "mta-sts.rpt-sts.example":
                "version: STSv1\r\nmode: enforce\r\nmx: mx.rpt-sts.example\r\nmax_age: 86400\r\n",
            # rpt-fetch: no policy served (404)
            "mta-sts.rpt-invalid.example": "version: STSv1\r\nmode: bogus\r\nmax_age: 1\r\n",
        }).start()
        # rpt-webpki: the policy server's certificate is not from the CA danerelay trusts.
        bad_crt, bad_key = self_signed(certs, "mta-sts.rpt-webpki.example")
        cls.servers["badpolicy"] = PolicyServer(IPS["badpolicy"], port, bad_crt, bad_key, {
            "mta-sts.rpt-webpki.example":
                "version: STSv1\r\nmode: enforce\r\nmx: mx.rpt-webpki.example\r\n"
                "max_age: 86400\r\n"}).start()
        collector_chain, collector_key = signed_by(certs, "collector.reports.example", ca_crt,
                                                   ca_key)
        # The first POST is refused (503): danerelay tries again 30 s later.
        cls.servers["collector"] = ReportCollector(IPS["collector"], port, collector_chain,
                                                   collector_key, refuse_first=1).start()
        plain_crt, plain_key = self_signed(certs, "mx.plain.example")
        for name, (crt, key) in {
                "dane": (dane_crt, dane_key),
                "sts": signed_by(certs, "someone.else", ca_crt, ca_key),
                "plain": (plain_crt, plain_key), "inbox": (None, None)}.items():
            cls.servers[name] = MxServer(IPS[name], port, crt, key).start()

        cls.relay = Relay(deliver=True, extra_toml=w.toml() + f"""
[dkim]
notices_domain = "rpt-signing.example"
[[dkim.key]]
domain = "rpt-signing.example"
selector = "reports"
key_file = "{cls.dkim_key}"
[tls]
ca_file = "{ca_crt}"
[mta_sts]
https_port = {port}
fetch_timeout = "10s"
allow_special_addresses = true
[dane]
mandatory_domains = ["{MANDATORY}"]
[tls_policy]
"{ENCRYPT}" = "encrypt"
[tls_rpt]
enabled = true
organization = "Relay Test Org"
contact = "{CONTACT}"
[delivery]
port = {port}
connect_timeout = "5s"
[retry]
min_backoff = "1h"
""").start()
        # The day of the deliveries, in UTC (a run across midnight would split it).
        cls.day = datetime.now(timezone.utc).date()
        cls.ids = {d + str(n): cls.send(d) for n, d in enumerate(
            ["rpt-dane", "rpt-dane", "rpt-sts", "rpt-fetch", "rpt-invalid", "rpt-webpki",
             "rpt-none", "rpt-many", "rpt-bücher", "rpt-tlsa", "rpt-broken", "rpt-mandatory",
             "broken-reports", "rpt-encrypt"])}
        # RFC 8460 §4.4 counts sessions: three recipients over one connection are one.
        cls.ids["rpt-dane-three"] = cls.send("rpt-dane", rcpts=3)
        ids = list(cls.ids.values())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = [cls.show(i)["recipients"][0]["state"] for i in ids]
            if all(s not in ("queued", "attempting") for s in states):
                break
            time.sleep(0.3)
        cls.first_logs = cls.relay.logs()
        # Started again one day later: the daily run reports the day just lived.
        cls.relay.stop()
        cls.relay.env = {"LD_PRELOAD": FAKETIME, "FAKETIME": "+1d",
                         "ASAN_OPTIONS": "verify_asan_link_order=0"}
        cls.relay.start()
        # The first POST is refused, the others taken: the daemon is stopped before the refused
        # one is tried again (30 s later), which the next start does.
        collector = cls.servers["collector"]
        wait_for(lambda: collector.refused == 1 and collector.rejected == 1
                 and len(collector.received()) >= len(REPORTED) - 1,
                 timeout=60, what="the first round of POSTs")
        cls.second_logs = cls.relay.logs()
        cls.relay.stop()
        cls.relay.start()
        wait_for(lambda: len(cls.mails()) >= len(REPORTED)
                 and len(collector.received()) >= len(REPORTED)
                 and cls.servers["inbox"].received_for("many00@reports.example")
                 and cls.servers["inbox"].received_for(f"tlsrpt@{BROKEN}"),
                 timeout=120, what="the reports by mail and by HTTPS")

    @classmethod
    def send(cls, domain, rcpts=1):
        with smtplib.SMTP("127.0.0.1", cls.relay.port, timeout=30) as c:
            c.ehlo("test.example")
            c.mail("alice@sender.example", [] if domain.isascii() else ["SMTPUTF8"])
            for n in range(rcpts):
                c.rcpt(f"user{n or ''}@{domain}.example")
            # An ASCII header: the MX does not offer SMTPUTF8.
            subject = domain if domain.isascii() else "an IDN domain"
            code, reply = c.data(f"Subject: to {subject}\r\n\r\nHello.\r\n".encode())
            assert code == 250, reply
            return queued_id(reply)

    @classmethod
    def mails(cls):
        return cls.servers["inbox"].received_for("tlsrpt@reports.example")

    def mailed(self, domain):
        """The one report mailed for `domain`: (the parsed message, the report's JSON)."""
        got = [m for m in self.mails()
               if email.message_from_bytes(m["content"], policy=email.policy.default)
               ["TLS-Report-Domain"] == f"{domain}.example"]
        self.assertEqual(len(got), 1, [m["content"][:300] for m in self.mails()])
        msg = email.message_from_bytes(got[0]["content"], policy=email.policy.default)
        parts = [p for p in msg.iter_attachments()]
        self.assertEqual(len(parts), 1)
        self.assertEqual(parts[0].get_content_type(), "application/tlsrpt+gzip")
        return got[0], msg, parts[0], json.loads(gzip.decompress(parts[0].get_content()))

    def posted(self, domain):
        got = [p for p in self.servers["collector"].received()
               if json.loads(gzip.decompress(p["body"]))["policies"][0]["policy"]
               ["policy-domain"] == f"{domain}.example"]
        self.assertEqual(len(got), 1)
        return got[0], json.loads(gzip.decompress(got[0]["body"]))

    def check_schema(self, report, domain):
        """RFC 8460 §4.4, field by field."""
        self.assertEqual(set(report), TOP_KEYS)
        self.assertEqual(report["organization-name"], "Relay Test Org")
        self.assertEqual(report["contact-info"], CONTACT)
        self.assertEqual(report["date-range"], {
            "start-datetime": f"{self.day.isoformat()}T00:00:00Z",
            "end-datetime": f"{self.day.isoformat()}T23:59:59Z"})
        self.assertEqual(report["report-id"], f"{self.day.isoformat()}_{domain}.example@relay.test")
        self.assertGreaterEqual(len(report["policies"]), 1)
        for p in report["policies"]:
            self.assertLessEqual(set(p), {"policy", "summary", "failure-details"})
            self.assertLessEqual(set(p["policy"]), POLICY_KEYS)
            self.assertEqual(p["policy"]["policy-domain"], f"{domain}.example")
            self.assertIn(p["policy"]["policy-type"], {"tlsa", "sts", "no-policy-found"})
            for key in ("policy-string", "mx-host"):
                if key in p["policy"]:
                    self.assertTrue(all(isinstance(s, str) for s in p["policy"][key]))
            self.assertEqual(set(p["summary"]), {"total-successful-session-count",
                                                 "total-failure-session-count"})
            for v in p["summary"].values():
                self.assertIsInstance(v, int)
            failed = 0
            for d in p.get("failure-details", []):
                self.assertLessEqual(set(d), DETAIL_KEYS)
                self.assertIn(d["result-type"], RESULT_TYPES)
                # Every failure here had a connection: our end of it (a strict parser, Perl's
                # Mail::TLSRPT, requires the field).
                ipaddress.ip_address(d["sending-mta-ip"])
                self.assertIsInstance(d["failed-session-count"], int)
                failed += d["failed-session-count"]
            self.assertEqual(failed, p["summary"]["total-failure-session-count"])

    # --- the mail (RFC 8460 §5.3) ------------------------------------------------------------

    def test_each_report_mail_is_dkim_signed_and_verifies(self):
        self.assertGreaterEqual(len(self.mails()), len(REPORTED))
        for m in self.mails():
            # Signed under libfaketime one day ahead (t= is the daemon's time).
            self.assertEqual(python_verify(m["content"], self.world.port, 86400), [True])
            self.assertEqual(perl_verify(m["content"], self.world.port)[0],
                             ["pass d=rpt-signing.example s=reports a=rsa-sha256"])

    def test_each_report_is_mailed_through_the_queue_as_rfc_8460_asks(self):
        start = int(datetime(self.day.year, self.day.month, self.day.day,
                             tzinfo=timezone.utc).timestamp())
        for domain in REPORTED:
            with self.subTest(domain=domain):
                envelope, msg, part, report = self.mailed(domain)
                self.assertEqual(envelope["from"], CONTACT)
                self.assertEqual(msg["From"], CONTACT)
                self.assertEqual(msg["TLS-Report-Domain"], f"{domain}.example")
                self.assertEqual(msg["TLS-Report-Submitter"], "relay.test")
                self.assertEqual(
                    " ".join(str(msg["Subject"]).split()),
                    f"Report Domain: {domain}.example Submitter: relay.test Report-ID: "
                    f"<{report['report-id']}>")
                self.assertEqual(msg.get_content_type(), "multipart/report")
                self.assertEqual(msg.get_param("report-type"), "tlsrpt")
                self.assertEqual(part.get_filename(),
                                 f"relay.test!{domain}.example!{start}!{start + 86399}.json.gz")
                self.check_schema(report, domain)

    def test_each_report_is_posted_to_the_https_collector_too(self):
        for domain in REPORTED:
            with self.subTest(domain=domain):
                post, report = self.posted(domain)
                self.assertEqual(post["type"], "application/tlsrpt+gzip")
                self.assertEqual(post["path"], "/v1/tlsrpt")
                self.assertEqual(report, self.mailed(domain)[3])
        # The refused first POST was tried again, after a restart; the one answered 400 was
        # not.
        collector = self.servers["collector"]
        self.assertEqual((collector.refused, collector.rejected), (1, 1))
        self.assertIn("not taken by https://collector.reports.example", self.second_logs)
        self.assertIn("HTTP status 503; trying again in 30s (try 2 of 8)", self.second_logs)
        self.assertIn("/v1/reject: HTTP status 400; given up after 1 try", self.second_logs)
        self.assertRegex(self.relay.logs(), r"posted to https://collector\S+ \(try 2\)")

    def test_only_the_first_rua_uris_are_used(self):
        got = self.servers["inbox"].received_for("many00@reports.example")
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0]["to"], [f"many{n:02}@reports.example" for n in range(MAX_RUA)])
        for n in range(MAX_RUA, MANY):
            self.assertEqual(self.servers["inbox"].received_for(f"many{n:02}@reports.example"),
                             [])
        self.assertIn(f"TLS-RPT: _smtp._tls.rpt-many.example names {MANY} rua URIs; only the "
                      f"first {MAX_RUA} are used", self.relay.logs())

    # --- what the reports say ----------------------------------------------------------------

    def test_dane_domain_counts_sessions_not_recipients(self):
        # Three messages, five recipients: one session per connection (RFC 8460 §4.4); a
        # message sent over a cached connection adds none.
        reused = self.first_logs.count("reused the cached connection to mx.rpt-dane.example")
        report = self.mailed("rpt-dane")[3]
        self.assertEqual(report["policies"], [{
            "policy": {"policy-type": "tlsa", "policy-string": [self.dane_tlsa],
                       "policy-domain": "rpt-dane.example"},
            "summary": {"total-successful-session-count": 3 - reused,
                        "total-failure-session-count": 0}}])
        m = self.show(self.ids["rpt-dane-three"])
        self.assertEqual([r["state"] for r in m["recipients"]], ["delivered"] * 3)
        self.assertEqual(len({a["session"] for a in m["attempts"]}), 1, m["attempts"])

    def test_unusable_tlsa_records_are_reported_as_tlsa_invalid(self):
        # RFC 8460 §4.3.1: PKIX-EE only, so no usable TLSA (RFC 7672 §3.1.3): the mail went
        # out under "encrypt", and the session is a tlsa-invalid failure of the tlsa policy.
        self.assertEqual(self.show(self.ids["rpt-tlsa9"])["recipients"][0]["state"], "delivered")
        p = self.mailed("rpt-tlsa")[3]["policies"]
        self.assertEqual(len(p), 1)
        self.assertEqual(p[0]["policy"]["policy-type"], "tlsa")
        self.assertEqual(p[0]["policy"]["policy-string"],
                         [f"1 1 1 {self.dane_tlsa.split()[-1]}"])
        self.assertEqual(p[0]["summary"], {"total-successful-session-count": 0,
                                           "total-failure-session-count": 1})
        self.assertEqual(p[0]["failure-details"][0]["result-type"], "tlsa-invalid")

    # --- report mails get through (RFC 8460 §5.3) --------------------------------------------

    def test_report_mail_gets_through_broken_dane(self):
        # Ordinary mail to that domain waits: DANE demands STARTTLS, the MX has none.
        m = self.show(self.ids["broken-reports12"])
        self.assertEqual(m["recipients"][0]["state"], "deferred", m)
        # The report went out all the same, in plain text, marked as a report.
        got = self.servers["inbox"].received_for(f"tlsrpt@{BROKEN}")
        self.assertEqual(len(got), 1)
        msg = email.message_from_bytes(got[0]["content"], policy=email.policy.default)
        self.assertEqual(msg["TLS-Report-Domain"], "rpt-broken.example")
        report_id = self.queue_id_of_report("rpt-broken")
        self.assertTrue(self.show(report_id)["tls_report"])

    def test_report_mail_to_a_mandatory_dane_domain_waits(self):
        # The operator's table wins: under mandatory DANE a report is held back like any mail.
        queue_id = self.queue_id_of_report("rpt-mandatory")
        wait_for(lambda: self.show(queue_id)["recipients"][0]["state"] == "deferred",
                 timeout=30, what="the report to the mandatory-DANE domain tried")
        self.assertEqual(self.servers["inbox"].received_for(f"tlsrpt@{MANDATORY}"), [])
        m = self.show(queue_id)
        self.assertTrue(m["tls_report"])
        self.assertEqual(m["recipients"][0]["state"], "deferred", m)
        self.assertEqual(m["recipients"][0]["last_status"], "4.7.5", m)

    def test_report_mail_keeps_the_operators_tls_policy(self):
        # DANE and MTA-STS of the recipient domain are set aside for a report, the operator's
        # [tls_policy] is not: "encrypt" to an MX without STARTTLS holds the report back.
        queue_id = self.queue_id_of_report("rpt-encrypt")
        wait_for(lambda: self.show(queue_id)["recipients"][0]["state"] == "deferred",
                 timeout=30, what="the report to the encrypt-only domain tried")
        self.assertEqual(self.servers["inbox"].received_for(f"tlsrpt@{ENCRYPT}"), [])
        m = self.show(queue_id)
        self.assertTrue(m["tls_report"])
        self.assertEqual(m["recipients"][0]["state"], "deferred", m)
        self.assertTrue(m["recipients"][0]["last_status"].startswith("4.7."), m)

    def queue_id_of_report(self, domain):
        out = self.relay.cli("tls-rpt", "list", "--date", self.day.isoformat()).stdout.decode()
        found = re.search(rf"(?ms)^{re.escape(domain)}\.example  .*?mail queued as ([^\s;]+)", out)
        self.assertTrue(found, out)
        return found.group(1)

    def test_sts_domain_certificate_for_another_name(self):
        report = self.mailed("rpt-sts")[3]
        self.assertEqual(len(report["policies"]), 1)
        p = report["policies"][0]
        self.assertEqual(p["policy"]["policy-type"], "sts")
        self.assertEqual(p["policy"]["mx-host"], ["mx.rpt-sts.example"])
        self.assertEqual(p["policy"]["policy-string"],
                         ["version: STSv1", "mode: enforce", "max_age: 86400",
                          "mx: mx.rpt-sts.example"])
        self.assertEqual(p["summary"]["total-successful-session-count"], 0)
        self.assertGreaterEqual(p["summary"]["total-failure-session-count"], 1)
        d = p["failure-details"][0]
        self.assertEqual(d["result-type"], "certificate-host-mismatch")
        self.assertEqual(d["receiving-mx-hostname"], "mx.rpt-sts.example")
        self.assertEqual(d["receiving-ip"], IPS["sts"])

    def test_idn_domain_is_reported_in_a_labels(self):
        # The recipient was rpt-bücher.example: the TXT record at _smtp._tls.<A-labels> names
        # the rua, and the report's domain is the A-label form.
        m = self.show(self.ids["rpt-bücher8"])
        self.assertEqual(m["recipients"][0]["state"], "delivered", m)
        envelope, msg, part, report = self.mailed(IDN)
        self.assertEqual(msg["TLS-Report-Domain"], f"{IDN}.example")
        self.assertEqual([p["policy"] for p in report["policies"]],
                         [{"policy-type": "no-policy-found", "policy-string": [],
                           "policy-domain": f"{IDN}.example"}])
        self.assertEqual(report["policies"][0]["summary"]["total-successful-session-count"], 1)

    def test_policy_that_cannot_be_fetched_or_parsed(self):
        for domain, kind in (("rpt-fetch", "sts-policy-fetch-error"),
                             ("rpt-invalid", "sts-policy-invalid"),
                             ("rpt-webpki", "sts-webpki-invalid")):
            with self.subTest(domain=domain):
                p = self.mailed(domain)[3]["policies"]
                self.assertEqual(len(p), 1)
                self.assertEqual(p[0]["policy"], {"policy-type": "sts", "policy-string": [],
                                                  "policy-domain": f"{domain}.example"})
                self.assertEqual(p[0]["summary"]["total-failure-session-count"], 1)
                self.assertEqual(p[0]["failure-details"][0]["result-type"], kind)
        # The mail itself went out (no policy, so opportunistic TLS); the attempt says why
        # there was no policy.
        m = self.show(self.ids["rpt-fetch3"])
        self.assertEqual(m["recipients"][0]["state"], "delivered")
        self.assertTrue(m["attempts"][0]["mta_sts"].startswith(
            "no policy: sts-policy-fetch-error: https://mta-sts.rpt-fetch.example"),
            m["attempts"])

    # --- the operator's view -----------------------------------------------------------------

    def test_list_shows_what_was_sent_and_what_was_not(self):
        out = self.relay.cli("tls-rpt", "list", "--date", self.day.isoformat()).stdout.decode()
        for domain in REPORTED:
            self.assertIn(f"{domain}.example  {self.day.isoformat()}_{domain}.example@relay.test",
                          out)
        self.assertIn("rpt-none.example  -", out)
        self.assertIn("not sent: no TLS-RPT policy", out)
        self.assertIn("mail queued as", out)
        url = f"https://collector.reports.example:{self.port}/v1"
        self.assertEqual(out.count(f"posted to {url}/tlsrpt (1 try)"), len(REPORTED) - 1, out)
        self.assertEqual(out.count(f"posted to {url}/tlsrpt (2 tries)"), 1, out)
        self.assertIn(f"not posted to {url}/reject: HTTP status 400 (given up after 1 try)", out)
        logs = self.relay.logs()
        self.assertIn("TLS-RPT: report", logs)
        reused = self.first_logs.count("reused the cached connection to mx.rpt-dane.example")
        self.assertIn(f"rpt-dane.example ({3 - reused} session(s), 0 failed)", logs)

    def test_zzz_a_restart_sends_nothing_twice(self):
        mails, posts = len(self.mails()), len(self.servers["collector"].received())
        self.relay.stop()
        self.relay.start()
        # The daily run has looked (its TXT lookups are logged for new reports only): give it
        # a moment, then nothing new may have arrived.
        wait_for(lambda: "started" in self.relay.logs().rsplit("terminating", 1)[-1], timeout=20)
        time.sleep(2)
        self.assertEqual(len(self.mails()), mails)
        self.assertEqual(len(self.servers["collector"].received()), posts)


if __name__ == "__main__":
    unittest.main(verbosity=2)
