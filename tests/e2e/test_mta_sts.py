"""End to end: MTA-STS (RFC 8461), issue 12.

The DNS world serves unsigned domains with _mta-sts TXT records and mta-sts.<domain> addresses;
an HTTPS policy server on loopback (Python's http.server with a certificate from a test CA)
serves each domain's policy; MX servers present certificates from the same CA (or a wrong
name, or a self-signed key named by TLSA). [tls] ca_file points danerelay at the test CA."""
import json
import os
import re
import smtplib
import ssl
import tempfile
import time
import unittest

from dnsworld import DnsWorld
from world_case import WorldCase
from harness import Relay, queued_id, wait_for
from https_servers import PolicyServer, StallingServer
from mx import (MxServer, free_port_on, private_ca, self_signed, signed_by, tlsa_3_1_1)

POLICY_IP = "127.0.0.40"
IPS = {name: f"127.0.0.{n}" for n, name in enumerate(
    ["enforce", "nomatch", "wrongname", "dane", "cache", "rtls", "stall", "notls"], start=41)}
SENDER = "alice@sender.example"


def policy(mode, *mx, max_age=86400):
    return ("version: STSv1\r\n" + f"mode: {mode}\r\n" + "".join(f"mx: {m}\r\n" for m in mx)
            + f"max_age: {max_age}\r\n")


class MtaStsTest(WorldCase):
    @classmethod
    def build(cls):
        cls.tmp = tempfile.mkdtemp(prefix="danerelay-sts-")
        certs = os.path.join(cls.tmp, "certs")
        os.makedirs(certs)
        port = cls.port = free_port_on(list(IPS.values()) + [POLICY_IP])
        ca_crt, ca_key = cls.ca = private_ca(certs)
        domains = ["sts-enforce", "sts-nomatch", "sts-wrongname", "sts-testing", "sts-dane",
                   "sts-cache", "sts-notls"]
        policy_chain, policy_key = signed_by(
            certs, "mta-sts.sts-enforce.example", ca_crt, ca_key,
            also=[f"mta-sts.{d}.example" for d in domains + ["rtls-sts", "sts-ctl", "sts-fast"]])
        certs_for = {
            "enforce": signed_by(certs, "mx.sts-enforce.example", ca_crt, ca_key),
            "nomatch": signed_by(certs, "mx.sts-nomatch.example", ca_crt, ca_key),
            "wrongname": signed_by(certs, "someone.else", ca_crt, ca_key),
            "dane": self_signed(certs, "mx.sts-dane.example"),
            "cache": signed_by(certs, "mx.sts-cache.example", ca_crt, ca_key),
            "rtls": signed_by(certs, "mx.rtls-sts.example", ca_crt, ca_key),
        }
        cls.dane_tlsa = tlsa_3_1_1(certs_for["dane"][0])

        w = cls.world = DnsWorld(cls.tmp)
        mx_ip = {"sts-enforce": "enforce", "sts-nomatch": "nomatch", "sts-wrongname": "wrongname",
                 "sts-testing": "wrongname", "sts-dane": "dane", "sts-cache": "cache",
                 "sts-notls": "notls"}
        for d in domains:
            z = w.zone(f"{d}.example.", "signed" if d == "sts-dane" else "unsigned")
            z.add("@ MX 10 mx").add(f"mx A {IPS[mx_ip[d]]}").add(f"mta-sts A {POLICY_IP}")
            z.add('_mta-sts TXT "v=STSv1; id=1;"')
            if d == "sts-dane":
                z.add(f"_{port}._tcp.mx TLSA {cls.dane_tlsa}")
        # REQUIRETLS: an MX that offers it, reached by DANE (rtls-dane: TLSA 3 1 1 of its key)
        # and by MTA-STS (rtls-sts); an unsigned domain without a policy (rtls-plain).
        rtls_tlsa = tlsa_3_1_1(certs_for["rtls"][0])
        w.zone("rtls-dane.example.").add("@ MX 10 mx").add(f"mx A {IPS['rtls']}") \
            .add(f"_{port}._tcp.mx TLSA {rtls_tlsa}")
        w.zone("rtls-sts.example.", "unsigned").add("@ MX 10 mx").add(f"mx A {IPS['rtls']}") \
            .add(f"mta-sts A {POLICY_IP}").add('_mta-sts TXT "v=STSv1; id=7;"')
        w.zone("rtls-plain.example.", "unsigned").add("@ MX 10 mx").add(f"mx A {IPS['rtls']}")
        # Issue 20: a policy whose mx line carries control characters (sts-ctl); a policy host
        # that never answers (sts-slow) and one that does (sts-fast), for the fetch workers.
        for d, policy_ip in (("sts-ctl", POLICY_IP), ("sts-slow", IPS["stall"]),
                             ("sts-fast", POLICY_IP)):
            w.zone(f"{d}.example.", "unsigned").add("@ MX 10 mx") \
                .add(f"mx A {IPS['wrongname']}") \
                .add(f"mta-sts A {policy_ip}").add('_mta-sts TXT "v=STSv1; id=1;"')
        w.start()

        cls.policies = {
            "mta-sts.sts-enforce.example": policy("enforce", "mx.sts-enforce.example"),
            "mta-sts.sts-nomatch.example": policy("enforce", "mx.elsewhere.example"),
            "mta-sts.sts-wrongname.example": policy("enforce", "*.sts-wrongname.example"),
            "mta-sts.sts-testing.example": policy("testing", "mx.sts-testing.example"),
            # An MX without STARTTLS under a testing policy.
            "mta-sts.sts-notls.example": policy("testing", "mx.sts-notls.example"),
            # A self-signed certificate fails WebPKI, but DANE decides for this domain.
            "mta-sts.sts-dane.example": policy("enforce", "mx.sts-dane.example"),
            "mta-sts.sts-cache.example": policy("enforce", "mx.sts-cache.example"),
            "mta-sts.rtls-sts.example": policy("testing", "mx.rtls-sts.example"),
            # CR and ESC inside an mx line (a line ends at LF only): text a log must not carry.
            "mta-sts.sts-ctl.example": policy("testing", "mx.sts-ctl.example\rFORGED\x1b[2J",
                                              "mx.sts-ctl.example"),
            "mta-sts.sts-fast.example": policy("testing", "*.sts-fast.example"),
        }
        # RFC 8461 §3.3: text/plain, whatever its case, and with a parameter.
        cls.servers["policy"] = PolicyServer(POLICY_IP, port, policy_chain, policy_key,
                                             cls.policies,
                                             content_type="Text/Plain; charset=UTF-8").start()
        for name, (crt, key) in certs_for.items():
            cls.servers[name] = MxServer(IPS[name], port, crt, key,
                                         requiretls=name == "rtls").start()
        cls.servers["notls"] = MxServer(IPS["notls"], port).start()  # no STARTTLS

        cls.config = w.toml() + f"""
[tls]
ca_file = "{ca_crt}"
[mta_sts]
https_port = {port}
fetch_timeout = "10s"
allow_special_addresses = true
[delivery]
port = {port}
connect_timeout = "5s"
[retry]
min_backoff = "1h"
"""
        cls.relay = Relay(deliver=True, starttls=True, extra_toml=cls.config).start()
        cls.ids = {d: cls.send(d) for d in domains + ["sts-ctl"]}
        # REQUIRETLS needs TLS on the way in: the relay's STARTTLS listener.
        for d in ("rtls-dane", "rtls-sts", "rtls-plain", "sts-dane"):
            cls.ids["rtls:" + d] = cls.send(d, requiretls=True)
        # TLS-Required: No sets the MTA-STS policy aside (never DANE).
        for d in ("sts-wrongname", "sts-dane"):
            cls.ids["no:" + d] = cls.send(d, header="TLS-Required: No\r\n")
        cls.wait(cls.ids.values())

    @classmethod
    def send(cls, domain, relay=None, requiretls=False, header="", local="user"):
        relay = relay or cls.relay
        port = relay.tls_port if requiretls else relay.port
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
            c.ehlo("test.example")
            if requiretls:
                c.starttls(context=ssl._create_unverified_context())
                c.ehlo("test.example")
                assert c.has_extn("requiretls")
            c.mail(SENDER, ["REQUIRETLS"] if requiretls else [])
            c.rcpt(f"{local}@{domain}.example")
            code, reply = c.data(f"{header}Subject: to {domain}\r\n\r\nHello.\r\n".encode())
            assert code == 250, reply
            return queued_id(reply)

    @classmethod
    def wait(cls, ids, relay=None):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = [cls.show(i, relay)["recipients"][0]["state"] for i in ids]
            if all(s not in ("queued", "attempting") for s in states):
                return
            time.sleep(0.3)

    def outcome(self, domain):
        m = self.show(self.ids[domain])
        return m["recipients"][0], m["attempts"]

    def arrived(self, server, domain):
        return self.servers[server].received_for(f"user@{domain}.example")

    def test_enforce_with_a_matching_mx_and_a_valid_certificate_is_delivered(self):
        rcpt, attempts = self.outcome("sts-enforce")
        self.assertEqual(rcpt["state"], "delivered", attempts)
        got = self.arrived("enforce", "sts-enforce")
        self.assertEqual(len(got), 1)
        self.assertTrue(got[0]["tls"])
        self.assertEqual(attempts[-1]["tls_verdict"], "Trusted")
        self.assertEqual(attempts[-1]["mta_sts"], "enforce id=1")
        self.assertIn("MTA-STS policy of sts-enforce.example: id 1, mode enforce",
                      self.relay.logs())

    def test_enforce_with_an_mx_the_policy_does_not_name_is_deferred(self):
        rcpt, attempts = self.outcome("sts-nomatch")
        self.assertEqual((rcpt["state"], rcpt["last_status"]), ("deferred", "4.7.5"), attempts)
        self.assertIn("mx.sts-nomatch.example does not match the MTA-STS policy",
                      rcpt["last_reply"])
        self.assertEqual(attempts[-1]["ip"], "")  # never contacted
        self.assertEqual(self.arrived("nomatch", "sts-nomatch"), [])

    def test_enforce_with_a_certificate_for_another_name_is_deferred(self):
        rcpt, attempts = self.outcome("sts-wrongname")
        self.assertEqual((rcpt["state"], rcpt["last_status"]), ("deferred", "4.7.5"), attempts)
        self.assertIn("not trusted under the MTA-STS policy", rcpt["last_reply"])
        self.assertIn("mismatch", rcpt["last_reply"])  # X.509: hostname mismatch
        # Only the message with "TLS-Required: No" (below) got there.
        self.assertEqual([m for m in self.arrived("wrongname", "sts-wrongname")
                          if b"TLS-Required: No" not in m["content"]], [])

    def test_testing_mode_delivers_and_records_the_failure(self):
        rcpt, attempts = self.outcome("sts-testing")
        self.assertEqual(rcpt["state"], "delivered", attempts)
        self.assertEqual(len(self.arrived("wrongname", "sts-testing")), 1)
        a = attempts[-1]
        self.assertEqual(a["mta_sts"], "testing id=1")
        self.assertIn("MTA-STS testing: enforce would defer: the certificate of "
                      "mx.sts-testing.example", a["note"])
        self.assertIn("warning: " + self.ids["sts-testing"] + ": MTA-STS testing for "
                      "sts-testing.example", self.relay.logs())
        # RFC 8461 §5: let through under testing, still a failure in the TLS-RPT report.
        report = self.rpt("sts-testing.example")
        self.check_schema(report)
        sts = [p for p in report["policies"] if p["policy"]["policy-type"] == "sts"]
        self.assertEqual(len(sts), 1, report)
        self.assertIn("mode: testing", sts[0]["policy"]["policy-string"])
        self.assertEqual(sts[0]["summary"]["total-successful-session-count"], 0, report)
        self.assertEqual(sts[0]["summary"]["total-failure-session-count"], 1, report)
        self.assertEqual(sts[0]["failure-details"][0]["result-type"],
                         "certificate-host-mismatch")

    def test_testing_mode_without_starttls_delivers_and_reports_the_failure(self):
        rcpt, attempts = self.outcome("sts-notls")
        self.assertEqual(rcpt["state"], "delivered", attempts)
        got = self.arrived("notls", "sts-notls")
        self.assertEqual(len(got), 1)
        self.assertFalse(got[0]["tls"])
        self.assertIn("MTA-STS testing: enforce would defer: no TLS with mx.sts-notls.example",
                      attempts[-1]["note"])
        report = self.rpt("sts-notls.example")
        self.check_schema(report)
        sts = [p for p in report["policies"] if p["policy"]["policy-type"] == "sts"]
        self.assertEqual(len(sts), 1, report)
        self.assertEqual(sts[0]["summary"]["total-successful-session-count"], 0, report)
        self.assertEqual(sts[0]["summary"]["total-failure-session-count"], 1, report)
        d = sts[0]["failure-details"][0]
        self.assertEqual((d["result-type"], d["receiving-mx-hostname"], d["receiving-ip"]),
                         ("starttls-not-supported", "mx.sts-notls.example", IPS["notls"]))

    def test_dane_wins_over_mta_sts(self):
        rcpt, attempts = self.outcome("sts-dane")
        self.assertEqual(rcpt["state"], "delivered", attempts)
        a = attempts[-1]
        self.assertEqual((a["tls_verdict"], a["tlsa_record"]), ("Verified", self.dane_tlsa))
        self.assertEqual(a["mta_sts"], "enforce id=1, DANE applies")

    # --- REQUIRETLS (RFC 8689) -----------------------------------------------------------------

    def test_requiretls_through_a_dane_host_that_offers_it(self):
        m = self.show(self.ids["rtls:rtls-dane"])
        self.assertEqual(m["recipients"][0]["state"], "delivered", m)
        self.assertTrue(m["requiretls"])
        self.assertEqual(m["attempts"][-1]["tls_verdict"], "Verified")
        got = self.arrived("rtls", "rtls-dane")
        self.assertEqual(len(got), 1)
        self.assertTrue(got[0]["tls"] and got[0]["requiretls"])  # passed on

    def test_requiretls_through_an_mta_sts_host_that_offers_it(self):
        # The policy is only "testing", but REQUIRETLS holds the host to it: WebPKI-valid.
        m = self.show(self.ids["rtls:rtls-sts"])
        self.assertEqual(m["recipients"][0]["state"], "delivered", m)
        self.assertEqual(m["attempts"][-1]["tls_verdict"], "Trusted")
        self.assertTrue(self.arrived("rtls", "rtls-sts")[0]["requiretls"])

    def test_requiretls_bounces_without_authentication_or_support(self):
        # RFC 8689 §5: 5.7.10 when no authenticated TLS session can be had, 5.7.30 when the
        # server does not offer REQUIRETLS.
        plain = self.show(self.ids["rtls:rtls-plain"])
        r = plain["recipients"][0]
        self.assertEqual((r["state"], r["last_status"]), ("failed", "5.7.10"), plain)
        self.assertIn("authenticated neither by DANE nor by an MTA-STS policy", r["last_reply"])
        self.assertEqual(plain["attempts"][-1]["ip"], "")  # never contacted
        self.assertEqual(self.arrived("rtls", "rtls-plain"), [])
        # DANE-verified, but the next hop does not offer REQUIRETLS.
        dane = self.show(self.ids["rtls:sts-dane"])
        r = dane["recipients"][0]
        self.assertEqual((r["state"], r["last_status"]), ("failed", "5.7.30"), dane)
        self.assertIn("does not offer REQUIRETLS", r["last_reply"])
        self.assertEqual(len(self.arrived("dane", "sts-dane")), 2)  # the two other messages

    def test_tls_required_no_sets_mta_sts_aside_but_not_dane(self):
        m = self.show(self.ids["no:sts-wrongname"])
        self.assertEqual(m["recipients"][0]["state"], "delivered", m)
        self.assertEqual(m["attempts"][-1]["mta_sts"], "")
        self.assertEqual(len(self.arrived("wrongname", "sts-wrongname")), 1)
        dane = self.show(self.ids["no:sts-dane"])
        self.assertEqual(dane["recipients"][0]["state"], "delivered", dane)
        self.assertEqual(dane["attempts"][-1]["tls_verdict"], "Verified")

    # --- TLS-RPT (RFC 8460) preview -------------------------------------------------------------

    def rpt(self, domain, *args):
        r = self.relay.cli("tls-rpt", "preview", domain, *args, check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def check_schema(self, report):
        # RFC 8460 §4.4: the required fields and their JSON types.
        self.assertEqual(set(report), {"organization-name", "date-range", "contact-info",
                                       "report-id", "policies"})
        for key in ("organization-name", "contact-info", "report-id"):
            self.assertIsInstance(report[key], str)
        today = time.strftime("%Y-%m-%d", time.gmtime())
        self.assertEqual(report["date-range"], {"start-datetime": f"{today}T00:00:00Z",
                                                "end-datetime": f"{today}T23:59:59Z"})
        for p in report["policies"]:
            self.assertIn(p["policy"]["policy-type"], ("tlsa", "sts", "no-policy-found"))
            self.assertIsInstance(p["policy"]["policy-domain"], str)
            for key in ("total-successful-session-count", "total-failure-session-count"):
                self.assertIsInstance(p["summary"][key], int)
            for d in p.get("failure-details", []):
                self.assertIsInstance(d["result-type"], str)
                self.assertIsInstance(d["failed-session-count"], int)

    def test_tls_rpt_preview_of_an_mta_sts_domain(self):
        report = self.rpt("sts-wrongname.example")
        self.check_schema(report)
        self.assertEqual(report["organization-name"], "relay.test")
        self.assertEqual(report["contact-info"], "postmaster@relay.test")
        sts = [p for p in report["policies"] if p["policy"]["policy-type"] == "sts"]
        self.assertEqual(len(sts), 1, report)
        self.assertIn("mode: enforce", sts[0]["policy"]["policy-string"])
        self.assertEqual(sts[0]["policy"]["mx-host"], ["*.sts-wrongname.example"])
        self.assertEqual(sts[0]["summary"]["total-successful-session-count"], 0)
        self.assertGreaterEqual(sts[0]["summary"]["total-failure-session-count"], 1)
        d = sts[0]["failure-details"][0]
        self.assertEqual((d["result-type"], d["receiving-mx-hostname"], d["receiving-ip"]),
                         ("certificate-host-mismatch", "mx.sts-wrongname.example",
                          IPS["wrongname"]))

    def test_tls_rpt_preview_of_a_dane_domain(self):
        report = self.rpt("sts-dane.example", "--date", time.strftime("%Y-%m-%d", time.gmtime()))
        self.check_schema(report)
        tlsa = [p for p in report["policies"] if p["policy"]["policy-type"] == "tlsa"]
        self.assertEqual(len(tlsa), 1, report)
        self.assertEqual(tlsa[0]["policy"]["policy-string"], [self.dane_tlsa])
        self.assertGreaterEqual(tlsa[0]["summary"]["total-successful-session-count"], 2)
        self.assertEqual(tlsa[0]["summary"]["total-failure-session-count"], 0)
        # Another day: nothing.
        self.assertEqual(self.rpt("sts-dane.example", "--date", "2020-01-01")["policies"], [])
        bad = self.relay.cli("tls-rpt", "preview", "x.example", "--date", "yesterday",
                             check=False)
        self.assertEqual(bad.returncode, 64)

    def test_dane_check_shows_the_policy_and_its_verdict(self):
        # (Runs before the restart test below stops the policy server: tests run by name.)
        r = self.relay.cli("dane-check", "sts-enforce.example", "--json", check=False)
        report = json.loads(r.stdout)
        self.assertEqual(r.returncode, 0, report)
        self.assertEqual((report["mta_sts"]["mode"], report["mta_sts"]["id"]), ("enforce", "1"))
        host = report["hosts"][0]
        self.assertEqual(host["mta_sts"], "the MX host matches the policy")
        self.assertEqual(host["connections"][0]["tls_verdict"], "Trusted")
        r = self.relay.cli("dane-check", "sts-nomatch.example", check=False)
        text = r.stdout.decode()
        self.assertEqual(r.returncode, 1, text)
        self.assertIn("MTA-STS policy: mode enforce, id 1, max_age 86400, mx: mx.elsewhere.example",
                      text)
        self.assertIn("MTA-STS: the MX host does not match the policy", text)
        self.assertIn("does not match the MTA-STS policy of sts-nomatch.example", text)

    def test_a_new_ca_file_applies_on_reload(self):
        # [tls] ca_file pointed at another CA, then back: each takes effect with SIGHUP.
        os.makedirs(os.path.join(self.tmp, "other-ca"))
        other_ca, _ = private_ca(os.path.join(self.tmp, "other-ca"))
        ca_line = f'ca_file = "{self.ca[0]}"'
        with open(self.relay.config) as f:
            self.assertIn(ca_line, f.read())

        def reload_with(ca):
            with open(self.relay.config) as f:
                text = re.sub(r'(?m)^ca_file = ".*"$', f'ca_file = "{ca}"', f.read())
            with open(self.relay.config, "w") as f:
                f.write(text)
            self.relay.reload()

        try:
            reload_with(other_ca)
            qid = self.send("sts-enforce", local="reload")
            self.wait([qid])
            m = self.show(qid)
            self.assertEqual((m["recipients"][0]["state"], m["recipients"][0]["last_status"]),
                             ("deferred", "4.7.5"), m)
            self.assertIn("not trusted under the MTA-STS policy",
                          m["recipients"][0]["last_reply"])
        finally:
            reload_with(self.ca[0])
        self.relay.cli("queue", "flush", qid)
        wait_for(lambda: self.show(qid)["recipients"][0]["state"] == "delivered"
                 or len(self.show(qid)["attempts"]) > 1, what="the attempt after the flush")
        m = self.show(qid)
        self.assertEqual(m["recipients"][0]["state"], "delivered", m)
        self.assertEqual(m["attempts"][-1]["tls_verdict"], "Trusted")
        self.assertEqual(len(self.servers["enforce"].received_for("reload@sts-enforce.example")),
                         1)

    def test_policy_survives_a_restart_and_a_policy_server_that_is_down(self):
        rcpt, attempts = self.outcome("sts-cache")
        self.assertEqual(rcpt["state"], "delivered", attempts)
        queue_dir = self.relay.dir
        # A second daemon on the same queue after the first stopped; the policy server is gone
        # and the TXT record announces a new policy id, which cannot be fetched.
        self.relay.stop()
        self.servers.pop("policy").stop()
        zone = self.world.zones["sts-cache.example."]
        zone.records = [r.replace("id=1;", "id=2;") for r in zone.records]
        self.world.update_unsigned("sts-cache.example.", "_mta-sts.sts-cache.example", "TXT",
                                   "id=2")
        self.relay.start()
        self.assertEqual(self.relay.dir, queue_dir)
        qid = self.send("sts-cache")
        self.wait([qid])
        m = self.show(qid)
        self.assertEqual(m["recipients"][0]["state"], "delivered", m)
        self.assertEqual(m["attempts"][-1]["mta_sts"], "enforce id=1 (cached)")
        self.assertEqual(m["attempts"][-1]["tls_verdict"], "Trusted")
        self.assertIn("MTA-STS policy of sts-cache.example (id 2) not fetched", self.relay.logs())
        self.assertIn("the cached policy (id 1) stays in force", self.relay.logs())
        self.assertEqual(len(self.arrived("cache", "sts-cache")), 2)
        # RFC 8460 §4.3.2: the failed fetch is reported alongside the cached policy's session
        # (the first session, before the restart, had a fresh policy and no failure).
        report = self.rpt("sts-cache.example", "--date", time.strftime("%Y-%m-%d", time.gmtime()))
        self.check_schema(report)
        sts = [p for p in report["policies"] if p["policy"]["policy-type"] == "sts"]
        self.assertEqual(len(sts), 1, report)
        self.assertIn("mode: enforce", sts[0]["policy"]["policy-string"])
        self.assertEqual(sts[0]["policy"]["mx-host"], ["mx.sts-cache.example"])
        self.assertEqual(sts[0]["summary"]["total-successful-session-count"], 1, report)
        self.assertEqual(sts[0]["summary"]["total-failure-session-count"], 1, report)
        self.assertEqual([d["result-type"] for d in sts[0]["failure-details"]],
                         ["sts-policy-fetch-error"])
        self.assertEqual(sts[0]["failure-details"][0]["receiving-mx-hostname"],
                         "mx.sts-cache.example")

    # --- issue 20: what the daemon fetches, and what it logs -------------------------------------

    def test_policy_text_with_control_characters_is_escaped_in_the_log(self):
        rcpt, attempts = self.outcome("sts-ctl")
        self.assertEqual(rcpt["state"], "delivered", attempts)
        with open(self.relay.log_path, "rb") as f:  # bytes: text mode would turn CR into LF
            logs = f.read().decode("utf-8", "replace")
        line = next(l for l in logs.split("\n") if "MTA-STS policy of sts-ctl.example" in l)
        self.assertTrue(line.endswith(
            "MTA-STS policy of sts-ctl.example: id 1, mode testing, max_age 86400, "
            "mx mx.sts-ctl.example\\x0dforged\\x1b[2j mx.sts-ctl.example"), line)
        self.assertNotIn("\x1b", logs)
        self.assertNotIn("\r", logs)

    def test_policy_host_at_a_special_purpose_address_is_refused_by_default(self):
        # The same world without allow_special_addresses: the policy server is on loopback.
        config = self.config.replace("allow_special_addresses = true\n", "")
        self.assertNotEqual(config, self.config)
        relay = Relay(deliver=True, extra_toml=config)
        try:
            relay.start()
            qid = self.send("sts-enforce", relay=relay, local="special")
            self.wait([qid], relay)
            m = self.show(qid, relay)
            # No policy, so opportunistic TLS: delivered; the attempt says why there was none.
            self.assertEqual(m["recipients"][0]["state"], "delivered", m)
            self.assertEqual(
                m["attempts"][-1]["mta_sts"],
                "no policy: sts-policy-fetch-error: https://mta-sts.sts-enforce.example:"
                f"{self.port}/.well-known/mta-sts.txt: refused: mta-sts.sts-enforce.example has "
                f"only special-purpose addresses ({POLICY_IP}: loopback); "
                "[mta_sts] allow_special_addresses is false")
            self.assertIn("MTA-STS policy of sts-enforce.example (id 1) not fetched: https://",
                          relay.logs())
        finally:
            relay.stop()
            relay.cleanup()

    def test_one_slow_policy_host_does_not_hold_the_other_fetches(self):
        # A daemon of its own (nothing cached), with a fetch time limit far beyond the test's
        # waits: sts-slow's policy host accepts and never answers; sts-fast's fetch, asked for
        # while sts-slow's hangs, must not wait for it.
        stall = StallingServer(IPS["stall"], self.port).start()
        relay = Relay(deliver=True, extra_toml=self.config.replace('fetch_timeout = "10s"',
                                                                   'fetch_timeout = "120s"'))
        try:
            relay.start()
            slow = self.send("sts-slow", relay=relay)
            wait_for(lambda: stall.accepted >= 1, timeout=30, what="the sts-slow policy fetch")
            fast = self.send("sts-fast", relay=relay)
            wait_for(lambda: self.show(fast, relay)["recipients"][0]["state"] == "delivered",
                     timeout=60, what="the sts-fast delivery")
            self.assertEqual(self.show(fast, relay)["attempts"][-1]["mta_sts"], "testing id=1")
            # sts-slow's fetch still hangs: sts-fast did not wait for it.
            self.assertEqual(self.show(slow, relay)["attempts"], [])
            self.assertNotIn("sts-slow.example (id 1) not fetched", relay.logs())
        finally:
            stall.stop()  # its connections end, so the hanging fetch ends too
            relay.stop()
            relay.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
