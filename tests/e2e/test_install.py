"""End to end, issue 10: `cmake --install` into a temporary prefix, then the installed daemon
runs with the installed configuration and talks to systemd's notification socket (Type=notify)
as systemd would see it: READY=1 when up, RELOADING=1 and READY=1 around SIGHUP, STOPPING=1 on
SIGTERM. A second install keeps an edited configuration."""
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import unittest

from harness import DANERELAYD, free_port, wait_for, wait_for_port

BUILD_DIR = os.environ.get("DANERELAY_BUILD_DIR",
                           os.path.dirname(os.path.dirname(os.path.abspath(DANERELAYD))))


def install(prefix):
    r = subprocess.run(["cmake", "--install", BUILD_DIR, "--prefix", prefix],
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


class Notifications:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.seen = []

    def poll(self):
        try:
            while True:
                self.seen.append(self.sock.recv(4096).decode())
        except (socket.timeout, BlockingIOError):
            pass
        return self.seen

    def wait(self, text, timeout=15):
        wait_for(lambda: any(text in m for m in self.poll()), timeout=timeout,
                 what=f"{text!r} on the notification socket")

    def close(self):
        self.sock.close()


class InstallTest(unittest.TestCase):
    def setUp(self):
        self.prefix = tempfile.mkdtemp(prefix="danerelay-install-")

    def tearDown(self):
        shutil.rmtree(self.prefix, ignore_errors=True)

    def test_install_then_run_the_installed_daemon_with_the_installed_config(self):
        out = install(self.prefix)
        p = self.prefix
        for f in ("sbin/danerelayd", "bin/danerelay", "etc/danerelay/danerelay.toml",
                  "lib/systemd/system/danerelay.service", "lib/sysusers.d/danerelay.conf",
                  "share/doc/danerelay/danerelay.example.toml", "share/doc/danerelay/README.md"):
            self.assertTrue(os.path.exists(os.path.join(p, f)), f"{f} not installed:\n{out}")
        daemon, cli = os.path.join(p, "sbin/danerelayd"), os.path.join(p, "bin/danerelay")
        config = os.path.join(p, "etc/danerelay/danerelay.toml")

        for prog in (daemon, cli):
            v = subprocess.run([prog, "--version"], capture_output=True, timeout=30)
            self.assertEqual(v.returncode, 0)
            self.assertRegex(v.stdout.decode(), r"^danerelayd? \d+\.\d+\.\d+\n$")
            h = subprocess.run([prog, "--help"], capture_output=True, timeout=30)
            self.assertIn("/etc/danerelay/danerelay.toml", h.stdout.decode())
        for sub in (["queue", "list"], ["queue", "flush"], ["dane-check"], ["config", "check"]):
            h = subprocess.run([cli, *sub, "--help"], capture_output=True, timeout=30)
            self.assertEqual(h.returncode, 0, sub)
            self.assertIn("Usage:", h.stdout.decode())

        unit = open(os.path.join(p, "lib/systemd/system/danerelay.service")).read()
        self.assertIn(f"ExecStart={daemon} --config {config}\n", unit)
        for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "User=danerelay",
                     "StateDirectory=danerelay", "ProtectSystem=strict", "ProtectHome=yes",
                     "PrivateTmp=yes", "NoNewPrivileges=yes",
                     "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"):
            self.assertIn(line + "\n", unit)

        # The installed configuration keeps its queue in this prefix's state directory. Edit
        # it for the test: a free port, no delivery (no DNS beyond loopback).
        text = open(config).read()
        self.assertIn(f'path = "{p}/var/lib/danerelay"', text)
        port = free_port()
        text = re.sub(r"(?m)^port = 2525", f"port = {port}", text, count=1)
        text = re.sub(r"\[delivery\]\nenabled = true[^\n]*", "[delivery]\nenabled = false", text)
        self.assertIn(f"port = {port}", text)
        self.assertIn("[delivery]\nenabled = false", text)
        # No DNS beyond loopback: the resolver's self-check (the root's DNSKEY) is off.
        text = re.sub(r'validation_canary = "\."', 'validation_canary = ""', text)
        self.assertIn('validation_canary = ""', text)
        with open(config, "w") as f:
            f.write(text)

        notify = Notifications(p)
        log = open(os.path.join(p, "daemon.log"), "wb")
        proc = subprocess.Popen([daemon, "--config", config], stdout=log, stderr=subprocess.STDOUT,
                                env=dict(os.environ, NOTIFY_SOCKET=notify.path))
        try:
            wait_for_port("127.0.0.1", port, proc=proc)
            notify.wait("READY=1")
            self.assertTrue(any(f"MAINPID={proc.pid}" in m for m in notify.seen), notify.seen)
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
                # The null sender: the installed configuration checks senders' domains in DNS.
                c.sendmail("<>", ["bob@example.net"], b"Subject: installed\r\n\r\nhi\r\n")
            listed = subprocess.run([cli, "--config", config, "queue", "list"],
                                    capture_output=True, timeout=30)
            self.assertEqual(listed.returncode, 0, listed.stderr)
            self.assertIn(b"bob@example.net", listed.stdout)

            notify.seen.clear()
            proc.send_signal(signal.SIGHUP)
            notify.wait("RELOADING=1")
            notify.wait("READY=1")
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=30), 0)
            notify.wait("STOPPING=1")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
            log.close()
            notify.close()
        logs = open(os.path.join(p, "daemon.log")).read()
        self.assertIn(f"configuration={config}", logs)
        self.assertEqual(os.stat(os.path.join(p, "var/lib/danerelay")).st_mode & 0o777, 0o700)

        # Installing again never overwrites the operator's configuration.
        out = install(self.prefix)
        self.assertIn("Keeping the existing configuration", out)
        self.assertEqual(open(config).read(), text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
