"""End to end, issue 10: `[log] syslog = true` sends each line to syslog with the priority of
its level (facility mail by default). glibc's syslog(3) always writes to /dev/log, so the test
puts its own socket there. Where no syslog runs (a container) /dev/log is free and the socket is
bound there directly: no mount, no namespace. Where a syslog owns /dev/log (never touched), the
daemon runs in a mount namespace of its own whose /dev is a tmpfs with the test's socket; that
needs unshare(1) and a mount tree the namespace may make private, else the test is skipped."""
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
import unittest

from harness import DANERELAYD, Relay, wait_for, wait_for_port

LOG_MAIL = 2 << 3
LOG_WARNING, LOG_INFO = 4, 6


def bind_dev_log(sock):
    """Binds `sock` at /dev/log when nothing is there; the inode bound, or None."""
    if os.path.lexists("/dev/log"):
        return None
    try:
        sock.bind("/dev/log")
    except OSError:  # taken meanwhile, or /dev is not writable
        return None
    return os.stat("/dev/log").st_ino


def private_dev_works():
    """Whether a mount namespace with its own /dev can be made here (CAP_SYS_ADMIN, and a root
    whose propagation unshare(1) may make private so nothing leaks out)."""
    if not shutil.which("unshare"):
        return False
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        "mount -t tmpfs none /dev"], capture_output=True, timeout=30)
    return r.returncode == 0


@unittest.skipUnless(os.geteuid() == 0, "needs root to put a socket at /dev/log")
class SyslogTest(unittest.TestCase):
    def test_lines_go_to_syslog_with_the_priority_of_their_level(self):
        tmp = tempfile.mkdtemp(prefix="danerelay-syslog-")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.settimeout(0.2)
        relay = Relay(extra_toml="[log]\nsyslog = true\n")
        daemon = [os.path.abspath(DANERELAYD), "--config", relay.config]
        ours = bind_dev_log(sock)
        if ours is None:
            if not private_dev_works():
                sock.close()
                relay.cleanup()
                shutil.rmtree(tmp, ignore_errors=True)
                self.skipTest("/dev/log is taken (the machine's syslog) or /dev is read-only, "
                              "and no mount namespace with a private /dev can be made here "
                              "(unshare -m needs CAP_SYS_ADMIN) to put the test's socket there")
            sock_path = os.path.join(tmp, "log.sock")
            sock.bind(sock_path)
            hostdev = os.path.join(tmp, "hostdev")
            os.makedirs(hostdev)
            # A private /dev: a tmpfs with the few device nodes the daemon uses, and our socket.
            # unshare(1) makes the namespace's mounts private first, so none of this leaks out.
            script = (
                f"mount --bind /dev {hostdev} && mount -t tmpfs none /dev && "
                f"for n in null zero random urandom; do touch /dev/$n && "
                f"mount --bind {hostdev}/$n /dev/$n; done && "
                f"touch /dev/log && mount --bind {sock_path} /dev/log && "
                f"exec {' '.join(daemon)}")
            daemon = ["unshare", "-m", "--propagation", "private", "sh", "-c", script]
        log = open(relay.log_path, "ab")
        proc = subprocess.Popen(daemon, stdout=log, stderr=subprocess.STDOUT)
        lines, lock, done = [], threading.Lock(), threading.Event()

        # Read the socket all the time, as a syslog daemon does: a datagram socket holds only
        # net.unix.max_dgram_qlen (often 10) unread lines, and then syslog(3) in the daemon blocks.
        def reader():
            while not done.is_set():
                try:
                    line = sock.recv(65536).decode(errors="replace")
                except (socket.timeout, BlockingIOError):
                    continue
                except OSError:
                    return
                with lock:
                    lines.append(line)

        def receive():
            with lock:
                return list(lines)

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        try:
            wait_for_port("127.0.0.1", relay.port, proc=proc)
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=10) as c:
                c.sendmail("a@b.example", ["r@c.example"],
                           b"Message-ID: <syslog-1@b.example>\r\nSubject: x\r\n\r\ny\r\n")
            wait_for(lambda: any("message-id=<syslog-1@b.example>" in m for m in receive()),
                     timeout=10, what="the acceptance line on the syslog socket")
            pid = proc.pid  # the daemon's (in a namespace, `exec` kept the shell's PID)
            got = receive()
            info = [m for m in got if "message-id=<syslog-1@b.example>" in m][0]
            self.assertTrue(info.startswith(f"<{LOG_MAIL | LOG_INFO}>"), info)
            self.assertIn(f"danerelay/cleanup[{pid}]: ", info)
            warning = [m for m in got if "running as root" in m]
            self.assertTrue(warning, got)
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
            done.set()
            thread.join(timeout=5)
            sock.close()
            if ours is not None and os.stat("/dev/log").st_ino == ours:
                os.unlink("/dev/log")
            relay.cleanup()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
