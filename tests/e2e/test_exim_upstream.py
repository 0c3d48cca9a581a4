"""End to end, issue 21: a real Exim relays through danerelay, configured with the README's three
Exim parts (router, transport, authenticator) as they stand, only the relay's address and the
account replaced: submission port, STARTTLS required, AUTH PLAIN. danerelay delivers into the
test's DNSSEC world (DANE-verified); the bounce for a refused recipient comes back to the Exim
instance's mailbox for the sender.

Debian's exim4 packages conflict with postfix (both provide mail-transport-agent) and the other
tests need postfix installed, so Exim is not installed: tools/fetch-exim.sh extracts the binary
of exim4-daemon-light into a cache directory, and the test runs it with a private configuration
(`exim4 -C FILE -bdf`: its own spool, log and pid file, listening on EXIM_IP only)."""
import email
import email.policy
import os
import pwd
import re
import shutil
import signal
import smtplib
import subprocess
import tempfile
import unittest

from dnsworld import DnsWorld
from harness import wait_for, wait_for_port
from mx import MxServer, free_port_on, self_signed, tlsa_3_1_1
from readme import readme_block
from upstream import maildir_messages, start_with_account, submission_relay

MX_IP, EXIM_IP = "127.0.0.93", "127.0.0.94"
FETCH_EXIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                          "fetch-exim.sh")


def exim_binary():
    """The exim4 binary from tools/fetch-exim.sh (which downloads it once), or why there is
    none."""
    try:
        r = subprocess.run([FETCH_EXIM], capture_output=True, text=True, timeout=240)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, str(e)
    if r.returncode != 0:
        return None, r.stderr.strip()
    return r.stdout.strip().splitlines()[-1], None


def readme_exim(relay_host, relay_port, sasl_user, sasl_password):
    """The README's router, transport and authenticator, with the test's relay and account in
    place of the README's examples: what an operator copies is what runs here."""
    router = "\n".join(readme_block("**Exim**")) + "\n"
    transport = "\n".join(readme_block("A transport, in the transports section")) + "\n"
    authenticator = "\n".join(readme_block("An authenticator, in the authenticators")) + "\n"
    assert "relay.example.org::587" in router, router
    assert "^mx1^secret" in authenticator, authenticator
    router = router.replace("relay.example.org::587", f"{relay_host}::{relay_port}")
    authenticator = authenticator.replace("^mx1^secret", f"^{sasl_user}^{sasl_password}")
    return router, transport, authenticator


class EximInstance:
    """A private Exim: `exim4 -C DIR/exim.conf -bdf`, smtp on EXIM_IP:port, mail for
    exim.example into Maildirs below DIR/mail, everything else through the README's router."""

    def __init__(self, binary, base, port, relay_port, sasl_user, sasl_password):
        self.binary, self.port, self.proc = binary, port, None
        self.dir = os.path.join(base, "exim")
        self.conf = os.path.join(self.dir, "exim.conf")
        self.spool, self.logs = os.path.join(self.dir, "spool"), os.path.join(self.dir, "log")
        self.mail = os.path.join(self.dir, "mail")
        for d in (self.spool, self.logs, self.mail):
            os.makedirs(d, exist_ok=True)
        # The daemon runs as the account Exim was built for once it listens, and a
        # configuration given with -C that is not in Exim's TRUSTED_CONFIG_LIST
        # (/etc/exim4/trusted_configs) costs the processes it starts again (deliveries, queue
        # runs) their root privilege ("exim user lost privilege for using -C option"): spool,
        # logs and mailboxes are that account's, and local deliveries run as it.
        exim = pwd.getpwnam("Debian-exim")
        for d in (self.dir, self.spool, self.logs, self.mail):
            os.chown(d, exim.pw_uid, exim.pw_gid)
        os.chmod(base, 0o755)
        os.chmod(self.dir, 0o755)
        router, transport, authenticator = readme_exim("127.0.0.1", relay_port, sasl_user,
                                                       sasl_password)
        # The three parts from the README go into their sections as they stand; the rest is
        # what a private instance needs (its paths, its address, local delivery for bounces).
        # local_interfaces names EXIM_IP only, so that 127.0.0.1, danerelay's address, is not
        # one of Exim's own (a router's next hop on the local host is an error by default: the
        # router's `self` option). SMTPUTF8 is offered by default (smtputf8_advertise_hosts).
        with open(self.conf, "w") as f:
            f.write(f"""exim_path = {binary}
primary_hostname = mail.exim.example
qualify_domain = exim.example
spool_directory = {self.spool}
log_file_path = {self.logs}/%slog
pid_file_path = {self.dir}/exim.pid
local_interfaces = {EXIM_IP}
daemon_smtp_ports = {port}
disable_ipv6 = true
log_selector = +outgoing_port
keep_environment =
host_lookup =
rfc1413_hosts =
tls_advertise_hosts =
domainlist local_domains = exim.example
hostlist relay_from_hosts = 127.0.0.0/8
acl_smtp_rcpt = acl_check_rcpt

begin acl

acl_check_rcpt:
  accept domains = +local_domains
  accept hosts = +relay_from_hosts
  deny message = relay not permitted

begin routers

{router}
local_mail:
  driver = accept
  domains = +local_domains
  local_parts = alice
  transport = local_maildir

begin transports

{transport}
local_maildir:
  driver = appendfile
  directory = {self.mail}/$local_part_data
  maildir_format
  create_directory
  user = Debian-exim

begin retry

* * F,1h,5s

begin authenticators

{authenticator}""")
        os.chmod(self.conf, 0o644)

    def start(self):
        # Run by root, Exim keeps root with -C; it binds the port, then runs as Debian-exim.
        # -bdf: the daemon stays in the foreground, this process, stopped by its PID.
        with open(os.path.join(self.dir, "stderr"), "wb") as err:
            self.proc = subprocess.Popen([self.binary, "-C", self.conf, "-bdf", "-q5s"],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err)
        try:
            wait_for_port(EXIM_IP, self.port, timeout=20)
        except TimeoutError:
            self.stop()
            with open(os.path.join(self.dir, "stderr"), errors="replace") as f:
                raise AssertionError(f"exim did not listen; its standard error: {f.read()}\n"
                                     f"its panic log: {self.log('panic')}") from None
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        self.proc = None

    def log(self, which="main"):
        try:
            with open(os.path.join(self.logs, f"{which}log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def version(self):
        r = subprocess.run([self.binary, "-C", self.conf, "-bV"], capture_output=True,
                           text=True, timeout=60)
        return r.stdout.splitlines()[0] if r.stdout else r.stderr

    def mailbox(self, user):
        return maildir_messages(self.mail, user)


@unittest.skipUnless(os.geteuid() == 0, "a private Exim (exim4 -C FILE -bdf) needs root")
class EximUpstreamTest(unittest.TestCase):
    def test_exim_relays_through_danerelay_and_gets_its_bounce(self):
        binary, why = exim_binary()
        if binary is None:
            self.skipTest(f"no Exim binary from tools/fetch-exim.sh: {why}")
        tmp = tempfile.mkdtemp(prefix="danerelay-exim-")
        port = free_port_on([MX_IP, EXIM_IP])
        crt, key = self_signed(tmp, "mx.dest.example")
        world = DnsWorld(tmp)
        world.zone("dest.example.").add("@ MX 10 mx").add(f"mx A {MX_IP}") \
            .add(f"_{port}._tcp.mx TLSA {tlsa_3_1_1(crt)}")
        world.zone("exim.example.").add("@ MX 10 mail").add(f"mail A {EXIM_IP}")
        world.start()
        # A next hop with SMTPUTF8 and DSN, which records MAIL's AUTH= and parameters.
        mx = MxServer(MX_IP, port, crt, key, smtputf8=True, dsn=True).start()
        # No client is trusted by address: Exim must authenticate.
        relay, submission = submission_relay(world, port)
        exim = None
        try:
            start_with_account(relay, submission, "exim-host", "s3cret")
            exim = EximInstance(binary, tmp, port, submission, "exim-host", "s3cret").start()
            print(f"\n{exim.version()}", flush=True)

            def diagnostics():
                return (f"exim log:\n{exim.log()[-2500:]}\nexim panic log:\n{exim.log('panic')}"
                        f"\ndanerelay log:\n{relay.logs()[-2500:]}")

            with smtplib.SMTP(EXIM_IP, port, timeout=30) as c:
                self.assertTrue(c.ehlo()[0] == 250 and c.has_extn("smtputf8"))
                c.sendmail("alice@exim.example", ["bob@dest.example"],
                           b"From: alice@exim.example\r\nSubject: through the relay\r\n\r\n"
                           b"hello via exim\r\n")
                c.sendmail("alice@exim.example", ["reject-me@dest.example"],
                           b"From: alice@exim.example\r\nSubject: will bounce\r\n\r\n"
                           b"refused\r\n")
                # An 8-bit body (RFC 6152) with ASCII addresses.
                c.sendmail("alice@exim.example", ["eight@dest.example"],
                           b"From: alice@exim.example\r\nSubject: 8bit\r\n"
                           b"Content-Type: text/plain; charset=utf-8\r\n"
                           b"Content-Transfer-Encoding: 8bit\r\n\r\n"
                           b"gr\xc3\xbc\xc3\x9fe\r\n", mail_options=["BODY=8BITMIME"])
                # A UTF-8 recipient (RFC 6531): Exim passes SMTPUTF8 on to danerelay, which
                # passes it on to the MX.
                c.sendmail("alice@exim.example", ["j\u00f6rg@dest.example"],
                           b"From: alice@exim.example\r\nSubject: utf-8 recipient\r\n\r\n"
                           b"hello j\xc3\xb6rg\r\n", mail_options=["SMTPUTF8", "BODY=8BITMIME"])

            wait_for(lambda: mx.received_for("bob@dest.example"), timeout=60,
                     what=f"delivery at the MX; {diagnostics()}")
            got = mx.received_for("bob@dest.example")[0]
            self.assertTrue(got["tls"])
            self.assertIn(b"hello via exim", got["content"])
            # Exim authenticated over TLS: the Received header danerelay wrote says so.
            self.assertRegex(got["content"].decode(errors="replace"),
                             r"by relay\.test \(danerelay\) with ESMTPSA id")
            self.assertIn("sasl_username=exim-host", relay.logs())
            self.assertIn("Verified TLS connection established to mx.dest.example", relay.logs())
            # Exim's own account: delivered through the README's router, transport and
            # authenticator, over TLS, to danerelay's submission port (Exim writes it after
            # danerelay's 250, which may be after danerelay has delivered).
            delivered = (r"=> bob@dest\.example R=danerelay_smarthost T=danerelay_smtp "
                         rf"H=127\.0\.0\.1 \[127\.0\.0\.1\]:{submission} X=TLS\S+ CV=\S+ "
                         r"A=danerelay_plain C=\"250 ")
            wait_for(lambda: re.search(delivered, exim.log()), timeout=30,
                     what=f"Exim's delivery line; {diagnostics()}")
            # RFC 4954 §5: Exim gives AUTH= on MAIL only for a message with an authenticated
            # sender (this one came to it without authentication: none, not even AUTH=<>).
            self.assertIsNone(got["mail_auth"])
            # A message submitted on the command line with its authenticated sender (-oMas, as
            # root is trusted): Exim, authenticated to danerelay, gives AUTH=<sender> on MAIL,
            # and danerelay passes it on to the MX, which offers AUTH.
            r = subprocess.run([binary, "-C", exim.conf, "-oMas", "alice@exim.example",
                                "-f", "alice@exim.example", "auth-sender@dest.example"],
                               input=b"From: alice@exim.example\nSubject: authenticated sender"
                               b"\n\nfrom the command line\n", capture_output=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            wait_for(lambda: mx.received_for("auth-sender@dest.example"), timeout=60,
                     what=f"the authenticated sender's message at the MX; {diagnostics()}")
            self.assertEqual(mx.received_for("auth-sender@dest.example")[0]["mail_auth"],
                             "alice@exim.example")

            wait_for(lambda: mx.received_for("j\u00f6rg@dest.example"), timeout=60,
                     what=f"the UTF-8 recipient at the MX; {diagnostics()}")
            utf8 = mx.received_for("j\u00f6rg@dest.example")[0]
            self.assertIn(b"hello j\xc3\xb6rg", utf8["content"])
            self.assertIn("SMTPUTF8", utf8["mail_options"])
            wait_for(lambda: "=> j\u00f6rg@dest.example R=danerelay_smarthost " in exim.log(),
                     timeout=30, what=f"Exim's delivery line; {diagnostics()}")

            # The 8-bit body arrives as it was sent. Exim 4.96 gives no BODY=8BITMIME on MAIL
            # (its smtp transport has no BODY= parameter at all: "not a protocol converter"),
            # so danerelay has none to pass on; the body is relayed unchanged all the same.
            wait_for(lambda: mx.received_for("eight@dest.example"), timeout=60,
                     what=f"the 8-bit message at the MX; {diagnostics()}")
            eight = mx.received_for("eight@dest.example")[0]["content"]
            self.assertIn(b"Content-Transfer-Encoding: 8bit", eight)
            self.assertIn(b"gr\xc3\xbc\xc3\x9fe", eight)

            # The refused recipient: a bounce from danerelay back to Exim's mailbox.
            wait_for(lambda: exim.mailbox("alice"), timeout=60,
                     what=f"the bounce in alice's mailbox; {diagnostics()}")
            bounce = email.message_from_bytes(exim.mailbox("alice")[0],
                                              policy=email.policy.default)
            self.assertEqual(bounce["Subject"], "Undelivered Mail Returned to Sender")
            self.assertEqual(bounce.get_content_type(), "multipart/report")
            status = bounce.get_payload()[1].get_payload()[1]
            self.assertEqual(status["Final-Recipient"], "rfc822; reject-me@dest.example")
            self.assertEqual(status["Action"], "failed")
            self.assertEqual(status["Status"], "5.1.1")
            # Nothing went wrong in Exim but the privilege given up for -C (see EximInstance).
            lost = " exim user lost privilege for using -C option"
            self.assertEqual([line for line in exim.log("panic").splitlines()
                              if not line.endswith(lost)], [])
            relay.stop()
        finally:
            if exim:
                exim.stop()
            relay.cleanup()
            mx.stop()
            world.stop()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
