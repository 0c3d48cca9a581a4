"""End to end, issue 9: the real daemon against hostile input (raw sockets), a second daemon on
the same queue, the queue's file modes, the account it runs as (when the tests run as root),
running out of file descriptors, and the per-session and untrusted-client limits."""
import json
import os
import pwd
import resource
import shutil
import smtplib
import socket
import stat
import subprocess
import time
import unittest

from harness import (DANERELAY, DANERELAYD, Relay, free_port, queued_id, raw_session,
                     runnable_by_anyone, wait_for)


def replies(data):
    """The replies in `data` as (code, text) of their last lines (multiline replies once)."""
    out = []
    for line in data.split(b"\r\n"):
        if len(line) >= 4 and line[:3].isdigit() and line[3:4] == b" ":
            out.append((int(line[:3]), line[4:].decode(errors="replace")))
    return out


session = raw_session  # sends `data` in one write; everything the server says until it closes


HELLO = b"EHLO client.example\r\n"


class HostileInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.relay = Relay(trusted=["127.0.0.1/32"],
                          extra_toml="[limits]\nmax_commands_without_mail = 20\n").start()

    @classmethod
    def tearDownClass(cls):
        cls.relay.close()

    def test_bare_lf_inside_a_command_line_gets_one_reply(self):
        out = session(self.relay.port, HELLO + b"MAIL FROM:<a@b.example>\nRCPT TO:<r@c.example>\r\n"
                      b"QUIT\r\n")
        self.assertEqual([c for c, _ in replies(out)], [220, 250, 500, 221], out)
        self.assertIn("bare <CR> or <LF>", replies(out)[2][1])

    def test_malformed_utf8_under_smtputf8_is_553_5_6_7(self):
        for mail, rcpt in ((b"MAIL FROM:<j\xc3rg@b.example> SMTPUTF8\r\n", None),
                           (b"MAIL FROM:<a@b.example> SMTPUTF8\r\n",
                            b"RCPT TO:<r\xed\xa0\x80@c.example>\r\n")):
            out = session(self.relay.port, HELLO + mail + (rcpt or b"") + b"QUIT\r\n")
            got = replies(out)
            self.assertEqual(got[-2][0], 553, out)
            self.assertTrue(got[-2][1].startswith("5.6.7"), out)

    def test_envid_and_orcpt_that_decode_to_control_characters_are_refused(self):
        out = session(self.relay.port, HELLO +
                      b"MAIL FROM:<a@b.example> ENVID=x+0D+0AX-Injected:+20yes\r\n"
                      b"MAIL FROM:<a@b.example> ENVID=ok\r\n"
                      b"RCPT TO:<r@c.example> ORCPT=rfc822;r+0D+0A.+0D+0A@c.example\r\n"
                      b"QUIT\r\n")
        self.assertEqual(replies(out)[2:], [
            (501, "5.5.4 Bad parameter ENVID=x+0D+0AX-Injected:+20yes: ENVID must be xtext of "
                  "printable ASCII, at most 100 characters"),
            (250, "2.1.0 Ok"),
            (501, "5.5.4 Bad parameter ORCPT=rfc822;r+0D+0A.+0D+0A@c.example: ORCPT address must "
                  "be xtext of printable ASCII"),
            (221, "2.0.0 Bye")], out)

    def test_empty_local_part_is_refused(self):
        out = session(self.relay.port, HELLO + b"MAIL FROM:<@relay.example:@b.example>\r\n"
                      b"QUIT\r\n")
        self.assertEqual(replies(out)[2][0], 501, out)

    def test_998_characters_after_a_stuffed_dot_are_legal(self):
        line = "." + "d" * 997  # 998 characters; smtplib sends it as 999 with the stuffed dot
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=10) as c:
            c.ehlo("client.example")
            c.mail("a@b.example")
            c.rcpt("r@c.example")
            code, text = c.data(f"Subject: long\r\n\r\n{line}\r\n".encode())
        self.assertEqual(code, 250, text)
        raw = self.relay.raw(queued_id(text))
        self.assertIn(b"\r\n" + line.encode() + b"\r\n", raw)

    def test_helo_is_made_printable_and_short_in_received(self):
        helo = b"evil\xff" + b"h" * 1533
        out = session(self.relay.port, b"EHLO " + helo + b"\r\nMAIL FROM:<a@b.example>\r\n"
                      b"RCPT TO:<r@c.example>\r\nDATA\r\nSubject: helo\r\n\r\nx\r\n.\r\nQUIT\r\n")
        got = replies(out)
        self.assertEqual(got[-2][0], 250, out)
        raw = self.relay.raw(queued_id(got[-2][1]))
        received = raw[:raw.index(b"\r\n")]
        self.assertTrue(received.startswith(b"Received: from evil?hhh"), received[:80])
        self.assertNotIn(b"\xff", raw)
        self.assertLess(len(received), 300)

    def test_idle_commands_end_the_session(self):
        out = session(self.relay.port, HELLO + b"NOOP\r\n" * 25)
        got = replies(out)
        self.assertEqual(got[-1], (421, "4.7.0 relay.test Error: too many commands without mail"))
        self.assertEqual(len(got), 2 + 20)  # greeting, EHLO and 19 NOOPs (20 commands), 421
        # A queued message starts the count over; accepted RCPTs do not count.
        rcpts = b"".join(b"RCPT TO:<r%d@c.example>\r\n" % i for i in range(30))
        out = session(self.relay.port, HELLO + b"NOOP\r\n" * 10 +
                      b"MAIL FROM:<a@b.example>\r\n" + rcpts +
                      b"DATA\r\nSubject: x\r\n\r\ny\r\n.\r\n" + b"NOOP\r\n" * 15 + b"QUIT\r\n")
        got = replies(out)
        self.assertEqual(got[-1], (221, "2.0.0 Bye"), out[-300:])
        self.assertIn("queued as", " ".join(t for _, t in got))

    def test_operator_bounce_of_a_large_message_without_a_blank_line_is_bounded(self):
        headers = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"y" * 60) for i in range(3000))
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=10) as c:
            c.ehlo("client.example")
            c.mail("sender@b.example")
            c.rcpt("r@c.example")
            code, text = c.data(headers)
        self.assertEqual(code, 250, text)
        qid = queued_id(text)
        self.assertGreater(len(self.relay.raw(qid)), 200000)
        self.relay.cli("queue", "bounce", qid)
        bounces = [m for m in self.relay.queue_json()
                   if m["sender"] == "" and any(r["address"] == "sender@b.example"
                                                for r in m["recipients"])]
        self.assertEqual(len(bounces), 1)
        notice = self.relay.raw(bounces[0]["id"])
        self.assertIn(b"Content-Type: text/rfc822-headers", notice)
        self.assertIn(b"X-Filler-0: ", notice)
        self.assertLess(len(notice), 60000)


class QueueOwnershipTest(unittest.TestCase):
    def setUp(self):
        self.relay = Relay()

    def tearDown(self):
        self.relay.cleanup()

    def test_second_daemon_on_the_same_queue_exits_naming_the_first(self):
        self.relay.start()
        try:
            other = Relay()  # another port, same queue directory
            with open(other.config) as f:
                text = f.read()
            queue = os.path.join(self.relay.dir, "queue")
            with open(other.config, "w") as f:
                f.write(text.replace('path = "queue"', f'path = "{queue}"'))
            started = time.monotonic()
            r = subprocess.run([DANERELAYD, "--config", other.config], capture_output=True,
                               timeout=30)
            other.cleanup()
            self.assertLess(time.monotonic() - started, 5)
            self.assertEqual(r.returncode, 75, r.stderr)
            self.assertIn(f"in use by another danerelayd (PID {self.relay.proc.pid})",
                          r.stderr.decode())
            # The first one still works, and so does the command line beside it.
            self.assertIn(b"220 ", session(self.relay.port, b"QUIT\r\n"))
            self.relay.cli("queue", "list")
            # Once the first has stopped, the queue can be taken over.
            self.relay.stop()
            self.relay.start()
        finally:
            self.relay.stop()

    def test_queue_directory_and_files_are_private(self):
        os.makedirs(os.path.join(self.relay.dir, "queue"), mode=0o755)
        os.chmod(os.path.join(self.relay.dir, "queue"), 0o755)  # as an older version left it
        self.relay.start()
        try:
            with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=10) as c:
                c.sendmail("a@b.example", ["r@c.example"], b"Subject: x\r\n\r\ny\r\n")
            queue = os.path.join(self.relay.dir, "queue")
            self.assertEqual(stat.S_IMODE(os.stat(queue).st_mode), 0o700)
            # (shaping.status is replaced through shaping.status.tmp, there for an instant.)
            names = sorted(n for n in os.listdir(queue) if not n.endswith(".tmp"))
            self.assertEqual(names, ["danerelayd.lock", "queue.db", "queue.db-shm",
                                     "queue.db-wal", "queue.reserve", "shaping.status"])
            for name in names:
                mode = stat.S_IMODE(os.stat(os.path.join(queue, name)).st_mode)
                self.assertEqual(mode, 0o600, name)
        finally:
            self.relay.stop()


@unittest.skipUnless(os.geteuid() == 0, "needs root: the daemon drops from root to [server] user")
class PrivilegeDropTest(unittest.TestCase):
    def setUp(self):
        self.relay = Relay(extra_toml="")
        os.chmod(self.relay.dir, 0o755)  # so that the account can reach its queue directory
        with open(self.relay.config) as f:
            text = f.read()
        with open(self.relay.config, "w") as f:
            f.write(text.replace('hostname = "relay.test"',
                                 'hostname = "relay.test"\nuser = "nobody"'))
        os.chmod(self.relay.config, 0o644)
        # What runs as the account runs from copies it can reach (the checkout may be in /root).
        self.bin, self.daemon, self.cli = runnable_by_anyone(DANERELAYD, DANERELAY)

    def tearDown(self):
        self.relay.cleanup()
        shutil.rmtree(self.bin, ignore_errors=True)

    def test_runs_as_the_configured_user_and_the_queue_is_its_alone(self):
        nobody = pwd.getpwnam("nobody")
        self.relay.start()
        try:
            # Listeners are bound before root is given up: wait for the line logged after it.
            wait_for(lambda: "started:" in self.relay.logs(), timeout=20, what="the start line")
            with open(f"/proc/{self.relay.proc.pid}/status") as f:
                status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
            self.assertEqual(status["Uid"].split(), [str(nobody.pw_uid)] * 4)
            self.assertEqual(status["Gid"].split(), [str(nobody.pw_gid)] * 4)
            self.assertEqual(status["Groups"].split(), [str(nobody.pw_gid)])
            self.assertEqual(int(status["CapEff"], 16), 0)
            with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=10) as c:
                c.sendmail("a@b.example", ["r@c.example"], b"Subject: x\r\n\r\ny\r\n")
            queue = os.path.join(self.relay.dir, "queue")
            for name in [".", "queue.db", "queue.db-wal", "queue.db-shm", "danerelayd.lock"]:
                st = os.stat(os.path.join(queue, name))
                self.assertEqual((st.st_uid, st.st_gid), (nobody.pw_uid, nobody.pw_gid), name)
            # Root and the account read the queue; anyone else gets a clear refusal, not SQL.
            self.assertEqual(len(self.relay.queue_json()), 1)
            as_nobody = subprocess.run(
                ["su", "-s", "/bin/sh", "nobody", "-c",
                 f"{self.cli} --config {self.relay.config} queue list --json"],
                capture_output=True, timeout=60)
            self.assertEqual(as_nobody.returncode, 0, as_nobody.stderr)
            self.assertEqual(len(as_nobody.stdout.splitlines()), 1)
            other = subprocess.run(
                ["su", "-s", "/bin/sh", "daemon", "-c",
                 f"{self.cli} --config {self.relay.config} queue show --raw x"],
                capture_output=True, timeout=60)
            self.assertEqual(other.returncode, 2)
            self.assertIn("permission denied; the queue belongs to nobody", other.stderr.decode())
            self.assertNotIn("SQL", other.stderr.decode())
        finally:
            self.relay.stop()

    def test_started_as_the_account_itself_it_just_runs(self):
        nobody = pwd.getpwnam("nobody")
        os.chown(self.relay.dir, nobody.pw_uid, nobody.pw_gid)

        def become_nobody():
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)

        relay = self.relay
        relay.log = open(relay.log_path, "ab")
        relay.proc = subprocess.Popen([self.daemon, "--config", relay.config], stdout=relay.log,
                                      stderr=subprocess.STDOUT, preexec_fn=become_nobody)
        try:
            wait_for(lambda: "started:" in relay.logs() or relay.proc.poll() is not None,
                     timeout=10, what="the daemon")
            self.assertIsNone(relay.proc.poll(), relay.logs())
            self.assertIn("user=nobody", relay.logs())
        finally:
            relay.stop()

    def test_an_unknown_user_is_a_configuration_error(self):
        with open(self.relay.config) as f:
            text = f.read()
        with open(self.relay.config, "w") as f:
            f.write(text.replace('user = "nobody"', 'user = "no-such-user-danerelay"'))
        r = subprocess.run([DANERELAYD, "--config", self.relay.config], capture_output=True,
                           timeout=30)
        self.assertEqual(r.returncode, 78)
        self.assertIn("server.user: no such user 'no-such-user-danerelay'", r.stderr.decode())


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ResourceLimitTest(unittest.TestCase):
    def test_out_of_file_descriptors_the_daemon_pauses_instead_of_spinning(self):
        relay = Relay()
        limit = 64

        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        relay.log = open(relay.log_path, "ab")
        relay.proc = subprocess.Popen([DANERELAYD, "--config", relay.config], stdout=relay.log,
                                      stderr=subprocess.STDOUT, preexec_fn=low_limit)
        held = []
        try:
            wait_for(lambda: "started:" in relay.logs(), timeout=10, what="the daemon")
            self.assertIn(f"the file descriptor limit is {limit}, below the", relay.logs())
            # More connections than descriptors: the daemon runs out while they stay open.
            for _ in range(limit + 10):
                held.append(socket.create_connection(("127.0.0.1", relay.port), timeout=5))
            wait_for(lambda: "pausing new connections" in relay.logs(), timeout=10,
                     what="accept failing with EMFILE")
            before, lines_before = cpu_seconds(relay.proc.pid), relay.logs().count("\n")
            time.sleep(3)
            cpu = cpu_seconds(relay.proc.pid) - before
            lines = relay.logs().count("\n") - lines_before
            self.assertLess(cpu, 0.5, f"{cpu:.2f}s of CPU in 3s while out of descriptors")
            self.assertLess(lines, 20, f"{lines} log lines in 3s")
            # Once connections go, new ones are served again.
            for s in held:
                s.close()
            held = []

            def greeted():
                try:
                    with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as s:
                        return s.recv(100).startswith(b"220 ")
                except OSError:
                    return False

            wait_for(greeted, timeout=15, what="a greeting after the connections closed")
        finally:
            for s in held:
                s.close()
            relay.stop()
            relay.cleanup()


class UntrustedConnectionsTest(unittest.TestCase):
    def test_untrusted_clients_cannot_take_every_slot(self):
        relay = Relay(trusted=["127.0.0.2/32"],
                      extra_toml="[limits]\nmax_connections = 10\nmax_untrusted_connections = 2\n"
                                 "max_connections_per_client = 10\n")
        relay.start()
        held = []
        try:
            for _ in range(2):
                s = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
                self.assertTrue(s.recv(100).startswith(b"220 "))
                held.append(s)
            third = session(relay.port, b"", timeout=5)
            self.assertTrue(third.startswith(b"421 4.7.0 relay.test Error: too many connections"),
                            third)
            # A trusted server still gets in.
            trusted = session(relay.port, b"QUIT\r\n", source="127.0.0.2")
            self.assertTrue(trusted.startswith(b"220 "), trusted)
            self.assertIn("connection limit reached (for untrusted clients)", relay.logs())
        finally:
            for s in held:
                s.close()
            relay.stop()
            relay.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
