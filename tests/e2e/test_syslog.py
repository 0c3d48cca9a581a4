"""End to end, issue 10: `[log] syslog = true` sends each line to syslog with the priority of
its level (facility mail by default). The daemon runs in a mount namespace of its own whose
/dev/log is a socket of this test (the machine's syslog, if any, is never touched), so this
needs root and unshare(1)."""
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import unittest

from harness import DANERELAYD, Relay, wait_for, wait_for_port

LOG_MAIL = 2 << 3
LOG_WARNING, LOG_INFO = 4, 6


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("unshare"),
                     "needs root and unshare(1) for a private /dev/log")
class SyslogTest(unittest.TestCase):
    def test_lines_go_to_syslog_with_the_priority_of_their_level(self):
        tmp = tempfile.mkdtemp(prefix="danerelay-syslog-")
        sock_path = os.path.join(tmp, "log.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)
        sock.settimeout(0.2)
        relay = Relay(extra_toml="[log]\nsyslog = true\n")
        hostdev = os.path.join(tmp, "hostdev")
        os.makedirs(hostdev)
        # A private /dev: a tmpfs with the few device nodes the daemon uses, and our socket.
        script = (
            f"mount --make-rprivate / && mount --bind /dev {hostdev} && "
            f"mount -t tmpfs none /dev && "
            f"for n in null zero random urandom; do touch /dev/$n && "
            f"mount --bind {hostdev}/$n /dev/$n; done && "
            f"touch /dev/log && mount --bind {sock_path} /dev/log && "
            f"exec {os.path.abspath(DANERELAYD)} --config {relay.config}")
        log = open(relay.log_path, "ab")
        proc = subprocess.Popen(["unshare", "-m", "sh", "-c", script], stdout=log,
                                stderr=subprocess.STDOUT)
        lines = []

        def receive():
            try:
                while True:
                    lines.append(sock.recv(65536).decode(errors="replace"))
            except (socket.timeout, BlockingIOError):
                pass
            return lines

        try:
            wait_for_port("127.0.0.1", relay.port, proc=proc)
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=10) as c:
                c.sendmail("a@b.example", ["r@c.example"],
                           b"Message-ID: <syslog-1@b.example>\r\nSubject: x\r\n\r\ny\r\n")
            wait_for(lambda: any("message-id=<syslog-1@b.example>" in m for m in receive()),
                     timeout=10, what="the acceptance line on the syslog socket")
            pid = proc.pid  # `exec`: the daemon kept the shell's PID
            info = [m for m in lines if "message-id=<syslog-1@b.example>" in m][0]
            self.assertTrue(info.startswith(f"<{LOG_MAIL | LOG_INFO}>"), info)
            self.assertIn(f"danerelayd[{pid}]: ", info)
            warning = [m for m in lines if "running as root" in m]
            self.assertTrue(warning, lines)
            self.assertTrue(warning[0].startswith(f"<{LOG_MAIL | LOG_WARNING}>"), warning[0])
            self.assertIn("warning: running as root", warning[0])
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=30), 0)
            # Nothing went to stderr: the log is syslog's.
            with open(relay.log_path) as f:
                self.assertNotIn("message-id=", f.read())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
            log.close()
            sock.close()
            relay.cleanup()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
