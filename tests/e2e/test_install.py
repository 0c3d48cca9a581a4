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
import tomllib
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


class ManualTest(unittest.TestCase):
    """The manual pages render without warnings and name every command and configuration key,
    so that they cannot fall behind the program unnoticed."""

    SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    PAGES = {"danerelayd.8": "relay/daemon", "danerelay.8": "tools/cli", "danerelay.toml.5": "config",
             "danerelay.7": "relay/daemon"}

    def page(self, name):
        return os.path.join(self.SOURCE, self.PAGES[name], name)

    def rendered(self, name):
        r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-rLL=200n", self.page(name)],
                           capture_output=True, timeout=30, env=dict(os.environ, LC_ALL="C.UTF-8"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr.decode(), "", f"groff warns about {name}")
        # Plain text: no overstriking, hyphens as typed.
        return re.sub(r".\x08", "", r.stdout.decode()).replace("\u2010", "-").replace("\u2212", "-")

    def test_pages_render_without_warnings(self):
        for name in self.PAGES:
            with self.subTest(page=name):
                self.assertIn("NAME", self.rendered(name))

    def test_danerelay_8_names_every_command(self):
        text = self.rendered("danerelay.8")
        cli = [os.environ.get("DANERELAY", "build/tools/danerelay")]

        def subcommands(*args):
            out = subprocess.run(cli + [*args, "--help"], capture_output=True, timeout=30,
                                 check=True).stdout.decode()
            return re.findall(r"(?m)^  ([a-z][a-z-]+)  ", out.split("Subcommands:")[1])

        top = subcommands()
        self.assertIn("queue", top)
        for sub in top:
            self.assertIn(sub, text)
            for leaf in subcommands(sub) if sub in ("queue", "config", "tls-rpt") else []:
                self.assertIn(f"{sub} {leaf}", text)

    def test_danerelay_toml_5_names_every_key(self):
        text = self.rendered("danerelay.toml.5")
        with open(os.path.join(self.SOURCE, "config", "danerelay.example.toml"), "rb") as f:
            example = tomllib.load(f)
        # Keys the example shows commented out count too (not the sample entries of the
        # user-named tables [auth.senders] and [routes]).
        keys, table = set(), ""
        with open(os.path.join(self.SOURCE, "config", "danerelay.example.toml")) as f:
            for line in f:
                if re.match(r"\[+([a-z_.]+)\]+", line):
                    table = line.strip("[] \n")
                elif m := re.match(r"# ([a-z_]+) = ", line):
                    if table not in ("auth.senders", "routes"):
                        keys.add(m.group(1))
        for table, body in example.items():
            self.assertIn(f"[{table}]", text)
            for entry in body if isinstance(body, list) else [body]:
                keys |= {k for k, v in entry.items() if not isinstance(v, dict)}
        for key in sorted(keys):
            self.assertTrue(re.search(rf"\b{key}\b", text),
                            f"danerelay.toml(5) does not describe {key}")


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
                  "share/doc/danerelay/danerelay.example.toml", "share/doc/danerelay/README.md",
                  "share/man/man8/danerelayd.8", "share/man/man8/danerelay.8",
                  "share/man/man5/danerelay.toml.5", "share/man/man7/danerelay.7"):
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
