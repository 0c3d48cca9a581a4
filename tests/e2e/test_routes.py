"""Routes with real upstreams on 127.0.0.x (aiosmtpd, a private CA): STARTTLS + AUTH PLAIN only
after a verified handshake, no AUTH to an upstream whose certificate does not verify, failover to
the second host within one attempt, a 535 deferred (never bounced) with a warning, the most
specific route winning over "*", a sender route, implicit TLS, a fingerprint pin that matches and
one that does not, a client certificate the upstream checks, and the source address it sees."""
import os
import smtplib
import ssl
import stat
import tempfile
import time
import unittest

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

from harness import Relay, queued_id
from mx import Recorder, free_port_on, private_ca, self_signed, signed_by, tlsa_3_1_1

IPS = {"up": "127.0.0.81", "badca": "127.0.0.82", "badpass": "127.0.0.83", "implicit": "127.0.0.84",
       "clientcert": "127.0.0.85", "down": "127.0.0.86"}
SOURCE = "127.0.0.89"
UP_NAME = "smtp.up.test"
USER, PASSWORD = "relayuser", "correct horse"


class UpstreamRecorder(Recorder):
    """Records messages with the peer address and client certificate, and every AUTH command
    with whether it came inside TLS."""

    def __init__(self, accept_password=PASSWORD):
        super().__init__()
        self.auths = []
        self.accept_password = accept_password

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = auth_data.login.decode() == USER and auth_data.password.decode() == self.accept_password
        with self.lock:
            self.auths.append({"mechanism": mechanism, "ok": ok})
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535

    async def handle_DATA(self, server, session, envelope):
        peercert = server.transport.get_extra_info("peercert")
        with self.lock:
            self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                  "peer": session.peer[0], "client_cert": bool(peercert),
                                  "authenticated": session.authenticated})
        return "250 2.0.0 Ok: stored"


class RecordingSmtp(SMTP):
    async def smtp_AUTH(self, arg):
        with self.event_handler.lock:
            self.event_handler.auth_commands.append({"tls": self._tls_protocol is not None})
        await super().smtp_AUTH(arg)


class UpstreamController(Controller):
    def factory(self):
        return RecordingSmtp(self.handler, **self.SMTP_kwargs)


def upstream(ip, port, crt, key, accept_password=PASSWORD, implicit=False, client_ca=None):
    rec = UpstreamRecorder(accept_password)
    rec.auth_commands = []
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(crt, key)
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    kwargs = {"ssl_context": ctx} if implicit else {
        "tls_context": ctx, "require_starttls": True, "auth_required": True,
        "auth_require_tls": True, "authenticator": rec}
    c = UpstreamController(rec, hostname=ip, port=port, server_hostname=UP_NAME, ready_timeout=10,
                           **kwargs)
    c.recorder = rec
    return c


class RoutesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="danerelay-routes-")
        d = cls.tmp
        ca_crt, ca_key = private_ca(d)
        up_crt, up_key = signed_by(d, UP_NAME, ca_crt, ca_key)
        os.makedirs(os.path.join(d, "other"))
        # The right name, an unknown issuer.
        other_crt, other_key = self_signed(os.path.join(d, "other"), UP_NAME)
        client_crt, client_key = signed_by(d, "relay.test", ca_crt, ca_key)
        pin = tlsa_3_1_1(up_crt).split()[-1]
        pw = os.path.join(d, "password")
        with open(pw, "w") as f:
            f.write(PASSWORD + "\n")
        os.chmod(pw, stat.S_IRUSR | stat.S_IWUSR)
        port = cls.port = free_port_on(list(IPS.values()) + [SOURCE])
        cls.servers = {
            "up": upstream(IPS["up"], port, up_crt, up_key),
            "badca": upstream(IPS["badca"], port, other_crt, other_key),
            "badpass": upstream(IPS["badpass"], port, up_crt, up_key, accept_password="other"),
            "implicit": upstream(IPS["implicit"], port, up_crt, up_key, implicit=True),
            "clientcert": upstream(IPS["clientcert"], port, up_crt, up_key, implicit=True,
                                   client_ca=ca_crt),
        }
        for s in cls.servers.values():
            s.start()
        auth = f'auth = {{ user = "{USER}", password_file = "{pw}" }}'
        verify = f'tls = "verify", tls_names = ["{UP_NAME}"]'

        def hop(name):
            return f'"[{IPS[name]}]:{port}"'

        cls.relay = Relay(deliver=True, extra_toml=f"""
[tls]
ca_file = "{ca_crt}"
[retry]
min_backoff = "1h"
[routes]
"*" = {{ hosts = [{hop("up")}], {verify}, {auth} }}
"failover.test" = {{ hosts = [{hop("down")}, {hop("up")}], {verify}, {auth} }}
"badca.test" = {{ hosts = [{hop("badca")}], {verify}, {auth} }}
"badpass.test" = {{ hosts = [{hop("badpass")}], {verify}, {auth} }}
".implicit.test" = {{ hosts = [{hop("implicit")}], implicit_tls = true, {verify} }}
"pinned.test" = {{ hosts = [{hop("up")}], tls = "fingerprint", fingerprints = ["{pin}"], {auth} }}
"wrongpin.test" = {{ hosts = [{hop("up")}], tls = "fingerprint", fingerprints = ["{'0' * 64}"], {auth} }}
"clientcert.test" = {{ hosts = [{hop("clientcert")}], implicit_tls = true, {verify}, client_cert_file = "{client_crt}", client_key_file = "{client_key}", source_address = "{SOURCE}" }}
[sender_routes]
"@dept.example" = ".implicit.test"
""")
        cls.relay.start()
        cls.ids = {}
        for key, (sender, rcpt) in {
            "default": ("a@corp.example", "x@anywhere.example"),
            "failover": ("a@corp.example", "x@failover.test"),
            "badca": ("a@corp.example", "x@badca.test"),
            "badpass": ("a@corp.example", "x@badpass.test"),
            "subdomain": ("a@corp.example", "x@mail.implicit.test"),
            "sender": ("b@dept.example", "y@anywhere.example"),
            "pinned": ("a@corp.example", "x@pinned.test"),
            "wrongpin": ("a@corp.example", "x@wrongpin.test"),
            "clientcert": ("a@corp.example", "x@clientcert.test"),
        }.items():
            cls.ids[key] = cls.submit(sender, rcpt)
        cls.shows = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(cls.shows) < len(cls.ids):
            for key, qid in cls.ids.items():
                if key not in cls.shows:
                    m = cls.relay.show_json(qid)
                    if m["recipients"][0]["state"] not in ("queued", "attempting"):
                        cls.shows[key] = m
            time.sleep(0.2)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.relay.close()
        finally:
            for s in cls.servers.values():
                s.stop()
            import shutil
            shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def submit(cls, sender, rcpt):
        with smtplib.SMTP("127.0.0.1", cls.relay.port, timeout=30) as c:
            c.ehlo("client.test")
            c.mail(sender)
            c.rcpt(rcpt)
            code, reply = c.data(f"From: <{sender}>\r\nSubject: routes\r\n\r\nBody.\r\n".encode())
            assert code == 250, reply
            return queued_id(reply)

    def got(self, server, rcpt):
        rec = self.servers[server].recorder
        with rec.lock:
            return [m for m in rec.messages if rcpt in m["to"]]

    def rcpt_state(self, key):
        self.assertIn(key, self.shows, f"{key} was not attempted within a minute")
        return self.shows[key]["recipients"][0]

    def test_default_route_authenticates_after_verified_tls(self):
        self.assertEqual(self.rcpt_state("default")["state"], "delivered")
        [m] = self.got("up", "x@anywhere.example")
        self.assertTrue(m["authenticated"])
        rec = self.servers["up"].recorder
        self.assertTrue(rec.auth_commands)
        self.assertTrue(all(a["tls"] for a in rec.auth_commands), rec.auth_commands)
        self.assertIn("PLAIN", {a["mechanism"] for a in rec.auths})
        self.assertIn("route=*, tls=verify, relay=127.0.0.81[127.0.0.81]:%d" % self.port,
                      self.relay.logs())

    def test_no_credentials_to_an_upstream_that_does_not_verify(self):
        r = self.rcpt_state("badca")
        self.assertEqual(r["state"], "deferred")
        self.assertEqual(r["last_status"], "4.7.5")
        self.assertEqual(r["last_cause"], "tls-policy-not-verified")
        self.assertEqual(self.servers["badca"].recorder.auth_commands, [])
        self.assertEqual(self.got("badca", "x@badca.test"), [])

    def test_the_second_host_takes_the_mail_when_the_first_is_down(self):
        show = self.shows["failover"]
        self.assertEqual(self.rcpt_state("failover")["state"], "delivered")
        self.assertEqual(len(self.got("up", "x@failover.test")), 1)
        ips = [a["ip"] for a in show["attempts"]]
        self.assertEqual(ips, [IPS["down"], IPS["up"]], show["attempts"])

    def test_a_refused_password_defers_with_a_warning(self):
        r = self.rcpt_state("badpass")
        self.assertEqual(r["state"], "deferred")
        self.assertEqual(r["last_cause"], "upstream-auth")
        self.assertIn("535", r["last_reply"])
        self.assertRegex(self.relay.logs(), r"warning: SASL authentication to .*127\.0\.0\.83")
        self.assertEqual(self.got("badpass", "x@badpass.test"), [])

    def test_subdomain_route_with_implicit_tls_and_the_sender_route(self):
        self.assertEqual(self.rcpt_state("subdomain")["state"], "delivered")
        self.assertEqual(len(self.got("implicit", "x@mail.implicit.test")), 1)
        # b@dept.example's mail to anywhere goes the sender route's way, not "*".
        self.assertEqual(self.rcpt_state("sender")["state"], "delivered")
        self.assertEqual(len(self.got("implicit", "y@anywhere.example")), 1)
        self.assertEqual(self.got("up", "y@anywhere.example"), [])

    def test_fingerprint_pins(self):
        self.assertEqual(self.rcpt_state("pinned")["state"], "delivered")
        self.assertEqual(len(self.got("up", "x@pinned.test")), 1)
        r = self.rcpt_state("wrongpin")
        self.assertEqual(r["state"], "deferred")
        self.assertEqual(r["last_cause"], "tls-policy-not-verified")
        self.assertEqual(self.got("up", "x@wrongpin.test"), [])

    def test_client_certificate_and_source_address(self):
        self.assertEqual(self.rcpt_state("clientcert")["state"], "delivered")
        [m] = self.got("clientcert", "x@clientcert.test")
        self.assertTrue(m["client_cert"])
        self.assertEqual(m["peer"], SOURCE)

    def test_dane_check_shows_the_route_and_its_tls_policy(self):
        import json
        r = self.relay.cli("dane-check", "--json", "pinned.test", check=False)
        got = json.loads(r.stdout)
        self.assertEqual((got["route"], got["tls_policy"], got["verdict"]),
                         ("pinned.test", "fingerprint", "delivered"), got)
        r = self.relay.cli("dane-check", "--json", "wrongpin.test", check=False)
        self.assertEqual(json.loads(r.stdout)["verdict"], "deferred")
        text = self.relay.cli("dane-check", "mail.implicit.test", check=False).stdout.decode()
        self.assertIn("route: .implicit.test (TLS policy verify)", text)

    def test_attempts_name_the_route(self):
        notes = [a.get("note", "") for a in self.shows["default"]["attempts"]]
        self.assertTrue(any("route=*" in n and "tls=verify" in n for n in notes), notes)


if __name__ == "__main__":
    unittest.main()
