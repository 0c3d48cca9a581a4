"""End to end: the real danerelayd accepts mail over SMTP (plain and STARTTLS) from real
clients (smtplib, swaks, raw sockets) and the real danerelay command shows it in the queue."""
import os
import re
import smtplib
import socket
import ssl
import subprocess
import time
import unittest

from harness import (Relay, free_port, make_cert, queued_id, raw_session, strip_received,
                     wait_for)
from mx import MxServer, free_port_on


def message(subject, body=b"Hello.\r\n"):
    return (f"From: alice@example.org\r\nTo: bob@example.net\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@example.org>\r\n\r\n").encode() + body


class AcceptTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.relay = Relay(starttls=True, trusted=["127.0.0.1/32", "::1"],
                          extra_toml="[limits]\nmax_message_size = 100000\n"
                                     "max_connections_per_client = 3\n").start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.relay.stop()
            # The daemon logged each step of what the tests did.
            logs = cls.relay.logs()
            assert "terminating on signal 15" in logs, logs[-2000:]
        finally:
            cls.relay.cleanup()

    def by_id(self, queue_id):
        for m in self.relay.queue_json():
            if m["id"] == queue_id:
                return m
        self.fail(f"{queue_id} not in queue list --json")

    def test_plain_message_with_dsn_parameters(self):
        # 8-bit text, and a line that smtplib dot-stuffs on the wire and we must unstuff.
        body = message("plain", "8-bit: café\r\n.dot line\r\n".encode())
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=10) as c:
            code, ehlo = c.ehlo("client.example")
            self.assertEqual(code, 250)
            for ext in (b"PIPELINING", b"SIZE 100000", b"8BITMIME", b"ENHANCEDSTATUSCODES",
                        b"DSN", b"SMTPUTF8"):
                self.assertIn(ext, ehlo)
            self.assertNotIn(b"STARTTLS", ehlo)  # the plain listener has no certificate
            self.assertEqual(c.mail("alice@example.org",
                                    ["BODY=8BITMIME", "RET=HDRS", "ENVID=env+2B1"])[0], 250)
            self.assertEqual(c.rcpt("bob@example.net",
                                    ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;bob@example.net"])[0],
                             250)
            self.assertEqual(c.rcpt("carol@example.com")[0], 250)
            code, reply = c.data(body)
        self.assertEqual(code, 250, reply)
        self.assertTrue(reply.startswith(b"2.0.0 Ok: queued as "), reply)
        qid = queued_id(reply)

        m = self.by_id(qid)
        self.assertEqual(m["sender"], "alice@example.org")
        self.assertEqual(m["protocol"], "ESMTP")
        self.assertEqual(m["body"], "8BITMIME")
        self.assertEqual(m["dsn_ret"], "HDRS")
        self.assertEqual(m["dsn_envid"], "env+1")
        self.assertEqual(m["client_helo"], "client.example")
        self.assertEqual([r["address"] for r in m["recipients"]],
                         ["bob@example.net", "carol@example.com"])
        self.assertEqual(m["recipients"][0]["notify"], "SUCCESS,FAILURE")
        self.assertEqual(m["recipients"][0]["orcpt"], "rfc822;bob@example.net")
        self.assertEqual({r["state"] for r in m["recipients"]}, {"queued"})

        shown = self.relay.show_json(qid)
        headers = dict(shown["headers"])
        self.assertEqual(headers["Subject"], "plain")
        self.assertIn(f"by relay.test (danerelay) with ESMTP id {qid}", shown["headers"][0][1])
        self.assertEqual(shown["headers"][0][0], "Received")
        # Byte for byte (unstuffed again), minus our Received header.
        self.assertEqual(strip_received(self.relay.raw(qid)), body)
        self.assertEqual(m["size"], len(self.relay.raw(qid)))

        text = self.relay.cli("queue", "show", qid).stdout.decode()
        self.assertIn(f"Queue ID:   {qid}", text)
        self.assertIn("<bob@example.net>  state=queued", text)
        self.assertIn("NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.net", text)
        self.assertIn("Subject: plain", text)
        table = self.relay.cli("queue", "list").stdout.decode()
        self.assertIn(qid, table)
        self.assertIn("carol@example.com [queued]", table)

    def test_starttls(self):
        ctx = ssl.create_default_context(cafile=self.relay.cert)
        with smtplib.SMTP("127.0.0.1", self.relay.tls_port, timeout=10) as c:
            code, ehlo = c.ehlo("tls.example")
            self.assertIn(b"STARTTLS", ehlo)
            self.assertEqual(c.starttls(context=ctx)[0], 220)
            code, ehlo = c.ehlo("tls.example")
            self.assertNotIn(b"STARTTLS", ehlo)  # RFC 3207: not offered twice
            cipher = c.sock.cipher()
            c.mail("alice@example.org")
            c.rcpt("bob@example.net")
            code, reply = c.data(message("tls"))
        self.assertEqual(code, 250, reply)
        qid = queued_id(reply)
        self.assertEqual(self.by_id(qid)["protocol"], "ESMTPS")
        received = self.relay.show_json(qid)["headers"][0][1]
        self.assertIn(f"(using {c.sock.version() if c.sock else 'TLSv1.3'}", received)
        self.assertIn(cipher[0], received)
        self.assertIn("TLS connection established from unknown[127.0.0.1]", self.relay.logs())

    def test_swaks_plain_and_tls(self):
        ids = []
        for port, extra in ((self.relay.port, []), (self.relay.tls_port, ["--tls"])):
            r = subprocess.run(["swaks", "--server", f"127.0.0.1:{port}", "--from",
                                "sw@example.org", "--to", "aks@example.net", "--h-Subject",
                                "swaks", *extra], capture_output=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
            line = [l for l in r.stdout.decode().splitlines() if "queued as" in l]
            self.assertEqual(len(line), 1, r.stdout.decode())
            ids.append(queued_id(line[0]))
        self.assertEqual(self.by_id(ids[0])["protocol"], "ESMTP")
        self.assertEqual(self.by_id(ids[1])["protocol"], "ESMTPS")
        self.assertEqual(self.by_id(ids[1])["recipients"][0]["address"], "aks@example.net")

    def test_untrusted_client_is_refused(self):
        before = len(self.relay.queue_json())
        out = raw_session(self.relay.port,
                          b"EHLO outsider.example\r\nMAIL FROM:<a@example.org>\r\n"
                          b"RCPT TO:<victim@example.net>\r\nDATA\r\nQUIT\r\n",
                          source="127.0.0.2")
        self.assertIn(b"554 5.7.1 <victim@example.net>: Relay access denied\r\n", out)
        self.assertIn(b"554 5.5.1 Error: no valid recipients\r\n", out)
        self.assertEqual(len(self.relay.queue_json()), before)
        self.assertIn("NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 554 5.7.1", self.relay.logs())

    def test_pipelined_session_in_one_write(self):
        out = raw_session(self.relay.port,
                          b"EHLO pipe.example\r\nMAIL FROM:<p@example.org>\r\n"
                          b"RCPT TO:<q1@example.net>\r\nRCPT TO:<q2@example.net>\r\nDATA\r\n"
                          b"Subject: pipe 1\r\n\r\none\r\n.\r\n"
                          b"MAIL FROM:<>\r\nRCPT TO:<q3@example.net>\r\nDATA\r\n"
                          b"Subject: pipe 2\r\n\r\ntwo\r\n.\r\nQUIT\r\n")
        codes = [l[:3] for l in out.split(b"\r\n") if l and l[3:4] == b" "]
        self.assertEqual(codes, [b"220", b"250", b"250", b"250", b"250", b"354", b"250",
                                 b"250", b"250", b"354", b"250", b"221"], out)
        ids = [queued_id(l) for l in out.split(b"\r\n") if b"queued as" in l]
        self.assertEqual(len(ids), 2)
        self.assertLess(ids[0], ids[1])  # IDs sort by arrival
        self.assertEqual(strip_received(self.relay.raw(ids[1])), b"Subject: pipe 2\r\n\r\ntwo\r\n")
        self.assertEqual(self.by_id(ids[1])["sender"], "")

    def test_smuggling_with_bare_lf_is_refused(self):
        before = len(self.relay.queue_json())
        out = raw_session(self.relay.port,
                          b"EHLO s.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n"
                          b"DATA\r\nSubject: outer\r\n\r\nbody\n.\nMAIL FROM:<evil@example.org>\r\n"
                          b"RCPT TO:<b@example.net>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n"
                          b"QUIT\r\n")
        self.assertIn(b"550 5.5.2 Error: message contains bare <CR> or <LF>", out)
        self.assertNotIn(b"queued as", out)
        self.assertEqual(len(self.relay.queue_json()), before)

    def test_size_limit(self):
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=10) as c:
            c.ehlo("big.example")
            code, reply = c.mail("a@example.org", ["SIZE=200000"])
            self.assertEqual(code, 552, reply)
            c.rset()
            c.mail("a@example.org")
            c.rcpt("b@example.net")
            code, reply = c.data(b"Subject: big\r\n\r\n" + (b"x" * 900 + b"\r\n") * 120)
            self.assertEqual(code, 552, reply)
            self.assertIn(b"5.3.4", reply)

    def test_connection_limit_per_client(self):
        socks = []
        try:
            # Three at once are welcome. Connections that just closed (the harness's readiness
            # probes) may still count for a moment on a slow (sanitizer) build: retry, bounded.
            for _ in range(100):
                if len(socks) == 3:
                    break
                s = socket.create_connection(("127.0.0.1", self.relay.port), timeout=10)
                if s.recv(1024).startswith(b"220 "):
                    socks.append(s)
                else:
                    s.close()
                    time.sleep(0.05)
            self.assertEqual(len(socks), 3)
            extra = raw_session(self.relay.port, b"")
            self.assertTrue(extra.startswith(b"421 4.7.0 relay.test Error: too many connections"),
                            extra)
        finally:
            for s in socks:
                s.close()

    def test_unknown_queue_id(self):
        r = self.relay.cli("queue", "show", "NOSUCHID", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"NOSUCHID: no such message", r.stderr)


class TimeoutAndConfigTest(unittest.TestCase):
    def test_idle_client_gets_421_after_command_timeout(self):
        relay = Relay(extra_toml='[limits]\ncommand_timeout = "1s"\n').start()
        try:
            start = time.monotonic()
            out = raw_session(relay.port, b"EHLO slow.example\r\n", timeout=10)
            self.assertIn(b"421 4.4.2 relay.test Error: timeout exceeded\r\n", out)
            self.assertLess(time.monotonic() - start, 5)
            relay.stop()
        finally:
            relay.cleanup()

    def test_timeout_counts_from_the_last_command(self):
        # Commands every 0.4 s keep a session with a 1 s timeout alive for 2.4 s (the deadline
        # moves with each read); then silence ends it within about a second.
        relay = Relay(extra_toml='[limits]\ncommand_timeout = "1s"\n').start()
        try:
            with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as s:
                f = s.makefile("rb")
                self.assertTrue(f.readline().startswith(b"220 "))
                for _ in range(6):
                    s.sendall(b"NOOP\r\n")
                    self.assertEqual(f.readline(), b"250 2.0.0 Ok\r\n")
                    time.sleep(0.4)
                start = time.monotonic()
                self.assertEqual(f.readline(), b"421 4.4.2 relay.test Error: timeout exceeded\r\n")
                self.assertLess(time.monotonic() - start, 3)
            relay.stop()
        finally:
            relay.cleanup()

    def test_bad_config_refuses_to_start(self):
        relay = Relay(extra_toml="[limits]\nmax_recipients = \"many\"\n")
        try:
            r = subprocess.run([os.environ.get("DANERELAYD", "build/relay/danerelayd"),
                                "--config", relay.config], capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 78)
            self.assertIn(f"{relay.config}:".encode(), r.stderr)
            self.assertIn(b"limits.max_recipients: expected an integer, got a string", r.stderr)
            cli = relay.cli("queue", "list", check=False)
            self.assertEqual(cli.returncode, 78)
        finally:
            relay.cleanup()

    def test_config_check(self):
        good = Relay()
        bad = Relay(extra_toml="[dane]\nmandatory_domains = \"example.org\"\n")
        # Readable, so the file parses; not PEM, so it cannot be loaded as a trust store.
        no_ca = Relay(extra_toml='[tls]\nca_file = "danerelay.toml"\n')
        try:
            ok = good.cli("config", "check", good.config)
            self.assertIn(b": ok (", ok.stdout)
            r = bad.cli("config", "check", bad.config, check=False)
            self.assertEqual(r.returncode, 78)
            self.assertIn(b"dane.mandatory_domains: expected an array of strings, got a string",
                          r.stderr)
            r = no_ca.cli("config", "check", no_ca.config, check=False)
            self.assertEqual(r.returncode, 78, r.stdout)
            self.assertIn(b"[tls] ca_file: cannot load CA certificates from", r.stderr)
        finally:
            good.cleanup()
            bad.cleanup()
            no_ca.cleanup()

    def test_missing_certificate_refuses_to_start(self):
        relay = Relay(starttls=True)
        os.remove(relay.cert)
        try:
            r = subprocess.run([os.environ.get("DANERELAYD", "build/relay/danerelayd"),
                                "--config", relay.config], capture_output=True, timeout=30)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(b"relay.crt", r.stderr)
        finally:
            relay.cleanup()


class ReloadTest(unittest.TestCase):
    def test_reload_reads_a_renewed_certificate_and_keeps_the_old_one_when_broken(self):
        relay = Relay(starttls=True).start()

        def presented():
            with smtplib.SMTP("127.0.0.1", relay.tls_port, timeout=10) as c:
                c.ehlo("client.example")
                c.starttls(context=ssl._create_unverified_context())
                return c.sock.getpeercert(binary_form=True)

        def on_file():
            with open(relay.cert) as f:
                return ssl.PEM_cert_to_DER_cert(f.read())

        try:
            first = on_file()
            self.assertEqual(presented(), first)
            # Renewed under the same file names (as certbot does), then SIGHUP.
            make_cert(relay.dir, cn="renewed.test")
            renewed = on_file()
            self.assertNotEqual(renewed, first)
            relay.reload()
            self.assertEqual(presented(), renewed)
            # A key that does not fit: a warning, and the listener keeps what it had.
            other = os.path.join(relay.dir, "other")
            os.mkdir(other)
            make_cert(other, cn="other.test")
            os.replace(os.path.join(other, "relay.key"), relay.key)
            relay.reload()
            self.assertIn(f"reload: listener 127.0.0.1:{relay.tls_port}:", relay.logs())
            self.assertIn("it keeps its old certificate", relay.logs())
            self.assertEqual(presented(), renewed)
        finally:
            relay.stop()
            relay.cleanup()

    def test_reload_adds_removes_and_changes_listeners(self):
        relay = Relay(starttls=True).start()
        plain, tls_port, added, busy = relay.port, relay.tls_port, free_port(), free_port()
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", busy))
        blocker.listen()

        def listener(port, extra=""):
            return f'[[listener]]\naddress = "127.0.0.1"\nport = {port}\n{extra}\n'

        tls = 'cert_file = "relay.crt"\nkey_file = "relay.key"\n'
        try:
            # A session on the STARTTLS listener, open across the reload that removes it.
            old = smtplib.SMTP("127.0.0.1", tls_port, timeout=10)
            old.ehlo("client.example")
            with open(relay.config) as f:
                text = f.read()
            head, tail = text.split("[[listener]]", 1)[0], text[text.index("[queue]"):]
            with open(relay.config, "w") as f:
                f.write(head + listener(plain, "starttls = true\n" + tls) + listener(added)
                        + listener(busy) + tail)
            relay.reload()
            logs = relay.logs()
            self.assertIn(f"reload: listening on 127.0.0.1:{added}", logs)
            self.assertIn(f"reload: listener 127.0.0.1:{busy}: ", logs)
            self.assertIn("not listening there (a restart will try again)", logs)
            self.assertIn(f"reload: no longer listening on 127.0.0.1:{tls_port}", logs)
            self.assertNotIn("take effect only after a restart", logs)
            # What a running daemon cannot take is said.
            with open(relay.config, "a") as f:
                f.write('\n[metrics]\naddress = "127.0.0.1"\nport = 1\n')
            relay.reload()
            self.assertIn("reload: changes to [metrics] take effect only after a restart",
                          relay.logs())
            # The new one takes mail; the kept one now offers STARTTLS; the removed one is
            # closed, but its session goes on.
            with smtplib.SMTP("127.0.0.1", added, timeout=10) as c:
                c.sendmail("alice@example.org", ["bob@example.net"], message("added"))
            with smtplib.SMTP("127.0.0.1", plain, timeout=10) as c:
                c.ehlo("client.example")
                self.assertTrue(c.has_extn("starttls"))
                c.starttls(context=ssl._create_unverified_context())
                c.sendmail("alice@example.org", ["bob@example.net"], message("plain-tls"))
            with self.assertRaises(OSError):
                socket.create_connection(("127.0.0.1", tls_port), timeout=5).close()
            old.sendmail("alice@example.org", ["bob@example.net"], message("old-session"))
            old.quit()
            self.assertEqual(len(relay.queue_json()), 3)
        finally:
            blocker.close()
            relay.stop()
            relay.cleanup()

    def test_reload_turns_delivery_on_and_off(self):
        mx_ip = "127.0.0.44"
        port = free_port_on([mx_ip])
        mx = MxServer(mx_ip, port).start()
        relay = Relay(extra_toml=f'[routes]\n"example.net" = "[{mx_ip}]:{port}"\n').start()

        def reload_with(enabled, hostname="relay.test"):
            with open(relay.config) as f:
                text = re.sub(r"(?m)^enabled = (true|false)$", f"enabled = {enabled}", f.read())
                text = re.sub(r'(?m)^hostname = ".*"$', f'hostname = "{hostname}"', text)
            with open(relay.config, "w") as f:
                f.write(text)
            relay.reload()

        def send(rcpt):
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=10) as c:
                c.sendmail("alice@example.org", [rcpt], message(rcpt))

        try:
            send("first@example.net")
            time.sleep(1)
            self.assertEqual(mx.received_for("first@example.net"), [])  # started disabled
            reload_with("true")
            wait_for(lambda: mx.received_for("first@example.net"), what="delivery after reload")
            self.assertIn("reload: delivery enabled", relay.logs())
            reload_with("false")
            self.assertIn("reload: delivery is disabled", relay.logs())
            send("second@example.net")
            time.sleep(1.5)
            self.assertEqual(mx.received_for("second@example.net"), [])
            self.assertEqual(relay.queue_json()[0]["recipients"][0]["state"], "queued")
            # Enabled again, under another host name: new sessions, outgoing EHLO and the
            # Received header take it.
            reload_with("true", hostname="renamed.test")
            wait_for(lambda: mx.received_for("second@example.net"), what="delivery again")
            self.assertIn("reload: delivery enabled again", relay.logs())
            self.assertEqual(mx.received_for("first@example.net")[0]["helo"], "relay.test")
            self.assertEqual(mx.received_for("second@example.net")[0]["helo"], "renamed.test")
            send("third@example.net")
            wait_for(lambda: mx.received_for("third@example.net"), what="the third message")
            self.assertIn(b"by renamed.test (danerelay)",
                          mx.received_for("third@example.net")[0]["content"])
        finally:
            relay.stop()
            relay.cleanup()
            mx.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
