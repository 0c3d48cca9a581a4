"""End to end, issue 20 (inbound abuse limits), against the real daemon with real TLS clients:
parallel AUTH attempts never verify more passwords than [auth] max_failures allows, a long AUTH
response (RFC 4954 §4: 12,288 octets) leaves the session usable, a client trickling bytes is cut
at the command deadline (and one trickling DATA at the minimum rate), two addresses holding idle
connections do not lock out a third client, a connection rate limit per client, a session
deadline for clients that do not authenticate, and no sender checks for clients that can never
relay. Every wait is bounded; no assertion depends on the machine being idle."""
import base64
import smtplib
import socket
import ssl
import subprocess
import threading
import time
import unittest

from harness import DANERELAY, Relay, free_port, wait_for


def passwd(relay, user, password):
    r = subprocess.run([DANERELAY, "--config", relay.config, "passwd", user],
                       input=(password + "\n").encode(), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()


def plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def read_reply(s, timeout):
    """One reply's last line (bytes), b"" when the server closed first; bounded by `timeout`."""
    s.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = data.split(b"\r\n")
        for line in lines[:-1]:
            if len(line) >= 4 and line[3:4] == b" ":
                return line
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    return b""


def trickle(s, data, interval, limit):
    """Sends `data` one byte every `interval` s until the server closes or `limit` s pass.
    Returns (seconds until the server answered or closed, what it said)."""
    start = time.monotonic()
    s.settimeout(interval)
    for byte in data:
        if time.monotonic() - start > limit:
            return None, b""
        try:
            s.sendall(bytes([byte]))
        except OSError:
            return time.monotonic() - start, b""
        try:
            got = s.recv(4096)
            return time.monotonic() - start, got  # a reply (421) or the close
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - start, b""
    return None, b""


class AbuseTest(unittest.TestCase):
    """AUTH, deadlines and sender checks for clients outside trusted_networks."""

    @classmethod
    def setUpClass(cls):
        cls.relay = Relay(starttls=True, trusted=["127.0.0.90/32"],
                          sender_checks='domain_exists = false\nallow_list = "allowed"', extra_toml="""
[auth]
users_file = "users"
max_failures = 3
[limits]
max_untrusted_connections_per_client = 30
""")
        with open(f"{cls.relay.dir}/allowed", "w") as f:
            f.write("only@example.org\n")
        cls.ctx = ssl.create_default_context(cafile=cls.relay.cert)
        cls.ctx.check_hostname = False
        passwd(cls.relay, "alice", "wonderland")
        cls.relay.start()

    @classmethod
    def tearDownClass(cls):
        cls.relay.close()

    def tls_session(self, source):
        c = smtplib.SMTP("127.0.0.1", self.relay.tls_port, timeout=60,
                         source_address=(source, 0))
        c.ehlo("client.example")
        c.starttls(context=self.ctx)
        c.ehlo("client.example")
        return c

    def test_parallel_wrong_passwords_verify_at_most_max_failures(self):
        source = "127.0.0.81"
        sessions = [self.tls_session(source) for _ in range(20)]
        codes = [None] * 20
        go = threading.Barrier(19, timeout=60)

        def attempt(i):
            try:
                if i < 19:
                    go.wait()
                    codes[i] = sessions[i].docmd("AUTH", "PLAIN " + plain("alice", f"wrong{i}"))
                else:
                    codes[i] = sessions[i].docmd("AUTH", "PLAIN " + plain("alice", "wonderland"))
            except (smtplib.SMTPException, OSError) as e:
                codes[i] = (None, str(e).encode())

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(19)]
        for t in threads:
            t.start()
        # The right password in the same batch, a moment after the wrong ones: refused while
        # the limit holds.
        time.sleep(0.5)
        right = threading.Thread(target=attempt, args=(19,))
        right.start()
        for t in threads + [right]:
            t.join(timeout=120)
        for c in sessions:
            c.close()
        logs = self.relay.logs()
        client = f"unknown[{source}]"
        verified = sum(1 for line in logs.splitlines()
                       if client in line and ("authentication failed: user=" in line
                                              or "sasl_username=" in line))
        print(f"\n  20 parallel AUTH (19 wrong, 1 right), max_failures = 3: {verified} verified, "
              f"replies {sorted(str(c[0]) for c in codes)}", flush=True)
        self.assertLessEqual(verified, 3, logs[-4000:])
        self.assertEqual(codes[19][0], 421, codes)
        self.assertNotIn(f"{client}: sasl_username=alice", logs)
        self.assertTrue(all(code[0] in (421, 535) for code in codes[:19]), codes)

    def test_auth_response_of_12000_octets_then_the_next_command_works(self):
        with self.tls_session("127.0.0.82") as c:
            code, reply = c.docmd("AUTH", "PLAIN")
            self.assertEqual(code, 334, reply)
            # A PLAIN response carrying a long (wrong) password: 12,000 octets of base64.
            response = base64.b64encode(b"\0alice\0" + b"x" * 8993)
            self.assertEqual(len(response), 12000)
            c.send(response + b"\r\n")
            code, reply = c.getreply()
            self.assertEqual(code, 535, reply)
            code, reply = c.docmd("NOOP")
            self.assertEqual(code, 250, reply)

    def test_client_that_can_never_relay_gets_no_sender_checks(self):
        # The allow-list would refuse this sender; an untrusted client that has not
        # authenticated is refused at RCPT without the checks being asked at all.
        with self.tls_session("127.0.0.84") as c:
            code, reply = c.mail("stranger@example.org")
            self.assertEqual(code, 250, reply)
            code, reply = c.rcpt("bob@example.net")
            self.assertEqual(code, 554, reply)
        # A client that may relay still has its sender checked.
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30,
                          source_address=("127.0.0.90", 0)) as c:
            c.ehlo("client.example")
            code, reply = c.mail("stranger@example.org")
            self.assertGreaterEqual(code, 500, reply)


class DeadlinesTest(unittest.TestCase):
    """Short timeouts: a line, and DATA, must arrive in time as a whole."""

    @classmethod
    def setUpClass(cls):
        cls.relay = Relay(trusted=["127.0.0.90/32"], extra_toml="""
[limits]
command_timeout = "3s"
data_timeout = "3s"
""").start()

    @classmethod
    def tearDownClass(cls):
        cls.relay.close()

    def test_slow_byte_client_is_cut_at_the_command_deadline(self):
        s = socket.create_connection(("127.0.0.1", self.relay.port), timeout=10,
                                     source_address=("127.0.0.83", 0))
        with s:
            self.assertTrue(read_reply(s, 10).startswith(b"220"))
            # One byte a second against a 3 s command timeout: the whole line is due in 3 s.
            elapsed, said = trickle(s, b"EHLO " + b"a" * 60 + b"\r\n", 1.0, limit=20)
        print(f"\n  one byte a second, command_timeout 3 s: cut after {elapsed} s", flush=True)
        self.assertIsNotNone(elapsed, "still connected after 20 s of one byte a second")
        self.assertIn(b"421 4.4.2", said)
        self.assertLess(elapsed, 15)

    def test_slow_data_is_cut_at_the_minimum_rate(self):
        s = socket.create_connection(("127.0.0.1", self.relay.port), timeout=10,
                                     source_address=("127.0.0.90", 0))  # trusted: may relay
        with s:
            self.assertTrue(read_reply(s, 10).startswith(b"220"))
            s.sendall(b"EHLO client.example\r\nMAIL FROM:<only@example.org>\r\n"
                      b"RCPT TO:<bob@example.net>\r\nDATA\r\n")
            got = b""
            deadline = time.monotonic() + 10
            while b"354 " not in got and time.monotonic() < deadline:
                got += s.recv(4096)
            self.assertIn(b"354 ", got)
            # About 2 bytes a second, far below the default minimum rate: cut within the
            # 3 s data timeout, though each byte comes well within it.
            elapsed, said = trickle(s, b"Subject: slow\r\n\r\n" + b"x" * 60, 0.5, limit=20)
        print(f"\n  DATA at 2 bytes a second, data_timeout 3 s: cut after {elapsed} s", flush=True)
        self.assertIsNotNone(elapsed, "DATA at 2 bytes a second still going after 20 s")
        self.assertIn(b"421 4.4.2", said)


class ConnectionLimitsTest(unittest.TestCase):
    """The default connection limits: two addresses holding idle connections."""

    @classmethod
    def setUpClass(cls):
        cls.relay = Relay(trusted=[]).start()

    @classmethod
    def tearDownClass(cls):
        cls.relay.close()

    def test_two_addresses_with_idle_connections_leave_room_for_a_third(self):
        held = []
        try:
            for source in ("127.0.0.71", "127.0.0.72"):
                for _ in range(55):
                    s = socket.create_connection(("127.0.0.1", self.relay.port), timeout=10,
                                                 source_address=(source, 0))
                    held.append(s)
                    read_reply(s, 10)  # 220, or 421 once the limit is reached
            s = socket.create_connection(("127.0.0.1", self.relay.port), timeout=10,
                                         source_address=("127.0.0.73", 0))
            held.append(s)
            greeting = read_reply(s, 10)
            self.assertTrue(greeting.startswith(b"220"), greeting)
            s.sendall(b"EHLO client.example\r\n")
            self.assertTrue(read_reply(s, 10).startswith(b"250"))
        finally:
            for s in held:
                s.close()
        self.assertIn("connection limit reached (per client) for unknown[127.0.0.71]",
                      self.relay.logs())


class NewLimitsTest(unittest.TestCase):
    """The keys issue 20 adds: a connection rate per client, a deadline to authenticate."""

    @classmethod
    def setUpClass(cls):
        cls.relay = Relay(trusted=["127.0.0.90/32"], extra_toml="""
[limits]
max_connection_rate = 5
untrusted_auth_timeout = "3s"
""").start()

    @classmethod
    def tearDownClass(cls):
        cls.relay.close()

    def greeting(self, source):
        s = socket.create_connection(("127.0.0.1", self.relay.port), timeout=10,
                                     source_address=(source, 0))
        with s:
            return read_reply(s, 10)

    def test_connection_rate_per_client(self):
        got = [self.greeting("127.0.0.75") for _ in range(7)]
        self.assertTrue(all(g.startswith(b"220") for g in got[:5]), got)
        self.assertTrue(got[5].startswith(b"421 4.7.0"), got)
        self.assertIn("connection rate limit exceeded: 6 from unknown[127.0.0.75]",
                      self.relay.logs())
        # Others, and trusted servers, are not affected.
        self.assertTrue(self.greeting("127.0.0.76").startswith(b"220"))
        for _ in range(7):
            self.assertTrue(self.greeting("127.0.0.90").startswith(b"220"))

    def test_untrusted_client_that_does_not_authenticate_is_cut(self):
        s = socket.create_connection(("127.0.0.1", self.relay.port), timeout=10,
                                     source_address=("127.0.0.77", 0))
        with s:
            self.assertTrue(read_reply(s, 10).startswith(b"220"))
            start = time.monotonic()
            said = b""
            # Busy but never authenticating: a NOOP every half second.
            while time.monotonic() - start < 20:
                try:
                    s.sendall(b"NOOP\r\n")
                except OSError:
                    break
                said = read_reply(s, 5)
                if not said.startswith(b"250"):
                    break
                time.sleep(0.5)
            self.assertIn(b"421 4.7.0", said)
            self.assertLess(time.monotonic() - start, 15)
        # A trusted server is not held to it.
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30,
                          source_address=("127.0.0.90", 0)) as c:
            c.ehlo("client.example")
            time.sleep(4)
            self.assertEqual(c.noop()[0], 250)


if __name__ == "__main__":
    unittest.main(verbosity=2)
