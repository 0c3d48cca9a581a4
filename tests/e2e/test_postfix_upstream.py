"""End to end, issue 10: interoperability with the server danerelay is built for. A real Postfix
(Debian's, a private instance: its own configuration, queue and addresses) relays through
danerelay as its relayhost, the way the README tells an operator to set it up: submission port,
STARTTLS required (smtp_tls_security_level = encrypt), SASL client authentication. danerelay
delivers into the test's DNSSEC world (DANE-verified), and the bounce for a refused recipient
finds its way back into the Postfix instance's mailbox for the sender."""
import email
import email.policy
import os
import pwd
import shutil
import smtplib
import ssl
import subprocess
import sys
import tempfile
import unittest

from dnsworld import DnsWorld
from harness import queued_id, wait_for, wait_for_port
from mx import MxServer, free_port_on, private_ca, self_signed, signed_by, tlsa_3_1_1
from readme import readme_block
from upstream import maildir_messages, start_with_account, submission_relay

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from bench_util import write_private_master_cf  # noqa: E402  (shared with bench-relay)

MX_IP, POSTFIX_IP, SEVEN_IP = "127.0.0.61", "127.0.0.62", "127.0.0.63"
SERVICES = (r"^(smtpd|pickup|cleanup|qmgr|trivial-rewrite|bounce|defer|trace|verify|flush|"
            r"proxymap|proxywrite|smtp|relay|showq|error|retry|discard|virtual|anvil|scache|"
            r"postlogd|tlsmgr)$")


def readme_postfix(relayhost, sasl_passwd, sasl_user, sasl_password):
    """The README's Postfix settings (main.cf) and sasl_passwd, with the test's relay, path and
    account in place of the README's examples: what an operator copies is what runs here."""
    main_cf = "\n".join(readme_block("**Postfix**")) + "\n"
    table = "\n".join(readme_block("The password table")) + "\n"
    for text in (main_cf, table):
        assert "[relay.example.org]:587" in text, text
    main_cf = main_cf.replace("[relay.example.org]:587", relayhost) \
        .replace("/etc/postfix/sasl_passwd", sasl_passwd)
    table = table.replace("[relay.example.org]:587", relayhost) \
        .replace("mx1:secret", f"{sasl_user}:{sasl_password}")
    assert sasl_passwd in main_cf and sasl_user in table, (main_cf, table)
    return main_cf, table


class PostfixInstance:
    """A private Postfix: `postfix -c DIR`, smtpd on POSTFIX_IP:port, mail for postfix.example
    into Maildirs below DIR/mail, everything else to `relayhost`."""

    def __init__(self, base, port, relayhost, sasl_user, sasl_password):
        self.dir = os.path.join(base, "postfix")
        self.etc, self.queue = os.path.join(self.dir, "etc"), os.path.join(self.dir, "queue")
        self.mail = os.path.join(self.dir, "mail")
        for d in (self.etc, self.queue, self.mail, os.path.join(self.dir, "data")):
            os.makedirs(d, exist_ok=True)
        nobody = pwd.getpwnam("nobody")
        shutil.chown(os.path.join(self.dir, "data"), "postfix")
        os.chown(self.mail, nobody.pw_uid, nobody.pw_gid)
        os.chmod(base, 0o755)
        self.port, self.master = port, None
        write_private_master_cf(os.path.join(self.etc, "master.cf"), SERVICES,
                                f"{POSTFIX_IP}:{port}")
        readme_main_cf, readme_table = readme_postfix(
            relayhost, os.path.join(self.etc, "sasl_passwd"), sasl_user, sasl_password)
        with open(os.path.join(self.etc, "sasl_passwd"), "w") as f:
            f.write(readme_table)
        os.chmod(os.path.join(self.etc, "sasl_passwd"), 0o600)
        with open(os.path.join(self.etc, "mailboxes"), "w") as f:
            f.write("alice@postfix.example alice/\n")
        # The relayhost settings are the README's, taken from it (only the names replaced).
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(f"""compatibility_level = 3.6
queue_directory = {self.queue}
data_directory = {self.dir}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = all
inet_protocols = ipv4
myhostname = mail.postfix.example
mydomain = postfix.example
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, permit_auth_destination, reject
virtual_mailbox_domains = postfix.example
virtual_mailbox_base = {self.mail}
virtual_mailbox_maps = texthash:{self.etc}/mailboxes
virtual_uid_maps = static:{nobody.pw_uid}
virtual_gid_maps = static:{nobody.pw_gid}
maillog_file_prefixes = /tmp
maillog_file = {self.dir}/maillog
smtp_dns_support_level = disabled
biff = no
""" + readme_main_cf)

    def start(self):
        subprocess.run(["postfix", "-c", self.etc, "start"], check=True, capture_output=True,
                       timeout=60)
        wait_for_port(POSTFIX_IP, self.port)
        with open(os.path.join(self.queue, "pid", "master.pid")) as f:
            self.master = int(f.read().split()[0])
        return self

    def stop(self):
        if self.master:
            subprocess.run(["postfix", "-c", self.etc, "stop"], capture_output=True, timeout=60)
            self.master = None

    def log(self):
        try:
            with open(os.path.join(self.dir, "maillog"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def mailbox(self, user):
        return maildir_messages(self.mail, user)


@unittest.skipUnless(os.geteuid() == 0, "a private Postfix instance (postfix -c DIR start) needs root")
class PostfixUpstreamTest(unittest.TestCase):
    def test_postfix_relays_through_danerelay_and_gets_its_bounce(self):
        tmp = tempfile.mkdtemp(prefix="danerelay-postfix-")
        port = free_port_on([MX_IP, POSTFIX_IP, SEVEN_IP])
        crt, key = self_signed(tmp, "mx.dest.example")
        world = DnsWorld(tmp)
        world.zone("dest.example.").add("@ MX 10 mx").add(f"mx A {MX_IP}") \
            .add(f"_{port}._tcp.mx TLSA {tlsa_3_1_1(crt)}")
        world.zone("postfix.example.").add("@ MX 10 mail").add(f"mail A {POSTFIX_IP}")
        # A destination whose MX does not offer 8BITMIME (RFC 6152).
        world.zone("seven.example.").add("@ MX 10 mx").add(f"mx A {SEVEN_IP}")
        world.start()
        # A next hop with SMTPUTF8 and DSN, which records each recipient's NOTIFY and ORCPT.
        mx = MxServer(MX_IP, port, crt, key, smtputf8=True, dsn=True).start()
        seven = MxServer(SEVEN_IP, port, crt, key, eightbitmime=False).start()
        # No client is trusted by address: Postfix must authenticate.
        relay, submission = submission_relay(world, port)
        postfix = None
        try:
            start_with_account(relay, submission, "postfix-host", "s3cret")
            postfix = PostfixInstance(tmp, port, f"[127.0.0.1]:{submission}", "postfix-host",
                                      "s3cret").start()

            with smtplib.SMTP(POSTFIX_IP, port, timeout=30) as c:
                c.sendmail("alice@postfix.example", ["bob@dest.example"],
                           b"From: alice@postfix.example\r\nSubject: through the relay\r\n\r\n"
                           b"hello via postfix\r\n")
                c.sendmail("alice@postfix.example", ["reject-me@dest.example"],
                           b"From: alice@postfix.example\r\nSubject: will bounce\r\n\r\n"
                           b"refused\r\n")

            wait_for(lambda: mx.received_for("bob@dest.example"), timeout=60,
                     what=f"delivery at the MX; postfix log:\n{postfix.log()[-1500:]}")
            got = mx.received_for("bob@dest.example")[0]
            self.assertTrue(got["tls"])
            self.assertIn(b"hello via postfix", got["content"])
            # Postfix authenticated over TLS: the Received header danerelay wrote says so.
            self.assertRegex(got["content"].decode(errors="replace"),
                             r"by relay\.test \(danerelay\) with ESMTPSA id")
            self.assertIn("sasl_username=postfix-host", relay.logs())
            self.assertIn("Verified TLS connection established to mx.dest.example", relay.logs())

            # Issue 21, RFC 6533 §3: a UTF-8 recipient relayed by Postfix. Postfix 3.7 gives it
            # the original recipient ORCPT=rfc822;j+C3+B6rg@dest.example (xtext of the UTF-8
            # bytes), which danerelay refused with 501 5.5.4, and Postfix bounced the mail.
            with smtplib.SMTP(POSTFIX_IP, port, timeout=30) as c:
                c.sendmail("alice@postfix.example", ["j\u00f6rg@dest.example"],
                           b"From: alice@postfix.example\r\nSubject: utf-8 recipient\r\n\r\n"
                           b"hello j\xc3\xb6rg\r\n", mail_options=["SMTPUTF8", "BODY=8BITMIME"],
                           rcpt_options=["NOTIFY=FAILURE,DELAY"])
            # The UTF-8 recipient reached the next hop with its original recipient, as
            # utf-8-addr-unitext since the next hop offers SMTPUTF8 (RFC 6533 §3).
            wait_for(lambda: mx.received_for("j\u00f6rg@dest.example"), timeout=60,
                     what=f"the UTF-8 recipient at the MX; postfix log:\n{postfix.log()[-2500:]}\n"
                     f"danerelay log:\n{relay.logs()[-3000:]}")
            utf8 = mx.received_for("j\u00f6rg@dest.example")[0]
            self.assertIn(b"hello j\xc3\xb6rg", utf8["content"])
            params = utf8["rcpt_params"]["j\u00f6rg@dest.example"]
            self.assertIn("ORCPT=utf-8;j\u00f6rg@dest.example", params)
            self.assertIn("NOTIFY=FAILURE,DELAY", params)
            self.assertNotIn("501 5.5.4", postfix.log())

            # Issue 21, RFC 6152 §3: an 8-bit message Postfix relays with BODY=8BITMIME, for a
            # next hop without 8BITMIME: it arrives converted to 7 bits, its text intact.
            text = "Grüße aus Köln: äöü ÄÖÜ\r\n".encode()
            with smtplib.SMTP(POSTFIX_IP, port, timeout=30) as c:
                c.sendmail("alice@postfix.example", ["user@seven.example"],
                           b"From: alice@postfix.example\r\nSubject: eight bit\r\n"
                           b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                           b"Content-Transfer-Encoding: 8bit\r\n\r\n" + text,
                           mail_options=["BODY=8BITMIME"])
            wait_for(lambda: seven.received_for("user@seven.example"), timeout=60,
                     what=f"the 8-bit message at the 7-bit MX; danerelay log:\n"
                     f"{relay.logs()[-3000:]}")
            got7 = seven.received_for("user@seven.example")[0]
            self.assertTrue(all(b < 128 for b in got7["content"]), got7["content"][:500])
            self.assertNotIn("BODY=8BITMIME", got7["mail_options"])
            part = email.message_from_bytes(got7["content"], policy=email.policy.default)
            self.assertEqual(part.get_payload(decode=True), text)
            self.assertIn("converted to 7bit", relay.logs())

            tls = ssl.create_default_context()
            tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
            # Issue 21, RFC 4954 §5: AUTH= on MAIL is accepted, and passed on to the next hop,
            # which offers AUTH: the mailbox, since the client authenticated.
            with smtplib.SMTP("127.0.0.1", submission, timeout=30) as c:
                c.starttls(context=tls)
                c.login("postfix-host", "s3cret")
                auth_ids = []
                for auth in ("<>", "a@b.example"):
                    code, _ = c.mail("a@b.example", [f"AUTH={auth}"])
                    self.assertEqual(code, 250, auth)
                    self.assertEqual(c.rcpt("auth-param@dest.example")[0], 250)
                    code, reply = c.data(b"Subject: auth param\r\n\r\nx\r\n")
                    self.assertEqual(code, 250)
                    auth_ids.append(queued_id(reply))
            wait_for(lambda: len(mx.received_for("auth-param@dest.example")) == 2, timeout=60,
                     what="both AUTH= messages at the MX")
            self.assertEqual([m["mail_auth"] for m in mx.received_for("auth-param@dest.example")],
                             ["<>", "a@b.example"])
            # Without AUTH= on MAIL, none goes on.
            self.assertIsNone(got["mail_auth"])
            # The operator sees what was kept (queue show, text and JSON).
            for qid, auth in zip(auth_ids, ("<>", "a@b.example")):
                shown = relay.cli("queue", "show", qid).stdout.decode()
                self.assertIn(f"MAIL AUTH:  AUTH={auth}\n", shown)
            self.assertEqual(relay.show_json(auth_ids[1])["mail_auth"], "a@b.example")

            # The refused recipient: a bounce from danerelay back to Postfix's mailbox.
            wait_for(lambda: postfix.mailbox("alice"), timeout=60,
                     what=f"the bounce in alice's mailbox; postfix log:\n{postfix.log()[-1500:]}")
            bounce = email.message_from_bytes(postfix.mailbox("alice")[0],
                                              policy=email.policy.default)
            self.assertEqual(bounce["Subject"], "Undelivered Mail Returned to Sender")
            self.assertEqual(bounce.get_content_type(), "multipart/report")
            status = bounce.get_payload()[1].get_payload()[1]
            self.assertEqual(status["Final-Recipient"], "rfc822; reject-me@dest.example")
            self.assertEqual(status["Action"], "failed")
            self.assertEqual(status["Status"], "5.1.1")
            self.assertIn("status=sent", postfix.log())
            relay.stop()
        finally:
            if postfix:
                postfix.stop()
            relay.cleanup()
            mx.stop()
            seven.stop()
            world.stop()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_chain_postfix_to_danerelay_to_an_authenticated_upstream(self):
        """Postfix -> danerelay (AUTH) -> a provider's relay (STARTTLS, AUTH PLAIN, a private CA)
        with the README's route as it stands; its first host is down, the second takes it."""
        from test_routes import PASSWORD, USER, upstream
        tmp = tempfile.mkdtemp(prefix="danerelay-chain-")
        down_ip, up_ip = "127.0.0.64", "127.0.0.65"
        port = free_port_on([POSTFIX_IP, down_ip, up_ip])
        ca_crt, ca_key = private_ca(tmp)
        up_crt, up_key = signed_by(tmp, "smtp2.provider.example", ca_crt, ca_key)
        world = DnsWorld(tmp)
        world.zone("provider.example.").add(f"smtp A {down_ip}").add(f"smtp2 A {up_ip}")
        world.zone("postfix.example.").add("@ MX 10 mail").add(f"mail A {POSTFIX_IP}")
        world.start()
        pw = os.path.join(tmp, "provider.password")
        with open(pw, "w") as f:
            f.write(PASSWORD + "\n")
        os.chmod(pw, 0o600)
        route = "\n".join(readme_block("## Sending from it through a provider"))
        route = route.replace(":587", f":{port}").replace("relay@example.org", USER) \
            .replace("/etc/danerelay/provider.password", pw)
        provider = upstream(up_ip, port, up_crt, up_key)
        provider.start()
        relay, submission = submission_relay(world, port)
        with open(relay.config, "a") as f:
            f.write(f'\n[tls]\nca_file = "{ca_crt}"\n{route}\n')
        postfix = None
        try:
            start_with_account(relay, submission, "postfix-host", "s3cret")
            postfix = PostfixInstance(tmp, port, f"[127.0.0.1]:{submission}", "postfix-host",
                                      "s3cret").start()
            with smtplib.SMTP(POSTFIX_IP, port, timeout=30) as c:
                c.sendmail("alice@postfix.example", ["carol@far.example"],
                           b"From: alice@postfix.example\r\nSubject: chain\r\n\r\nvia two\r\n")
            rec = provider.recorder

            def arrived():
                with rec.lock:
                    return [m for m in rec.messages if "carol@far.example" in m["to"]]
            wait_for(arrived, timeout=60, what=f"the provider; danerelay log:\n"
                     f"{relay.logs()[-3000:]}\npostfix log:\n{postfix.log()[-1500:]}")
            self.assertTrue(arrived()[0]["authenticated"])
            self.assertTrue(rec.auth_commands and all(a["tls"] for a in rec.auth_commands))
            self.assertIn(f"route=*, tls=verify, relay=smtp2.provider.example[{up_ip}]:{port}", relay.logs())
            self.assertIn(f"connect to smtp.provider.example[{down_ip}]:{port}", relay.logs())
            self.assertIn("status=sent", postfix.log())
            relay.stop()
        finally:
            if postfix:
                postfix.stop()
            relay.cleanup()
            provider.stop()
            world.stop()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
