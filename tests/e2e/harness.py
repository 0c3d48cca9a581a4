"""Harness for end-to-end tests: runs the real danerelayd and danerelay on loopback.

Every process a test starts is stopped by its PID; every wait is bounded.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

DANERELAYD = os.environ.get("DANERELAYD", "build/relay/danerelayd")
DANERELAY = os.environ.get("DANERELAY", "build/tools/danerelay")


def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host, port, timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"danerelayd exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def make_cert(directory, cn="relay.test"):
    """A self-signed certificate for 127.0.0.1 and `cn`, made now with openssl."""
    cert = os.path.join(directory, "relay.crt")
    key = os.path.join(directory, "relay.key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={cn}", "-addext", f"subjectAltName=DNS:{cn},IP:127.0.0.1",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True, timeout=60)
    return cert, key


def runnable_by_anyone(*programs):
    """Copies of `programs` in a new directory of mode 0755 under the system's temporary
    directory, so that an unprivileged account (nobody) can run them even when the build sits
    in a home directory it cannot enter (/root is 0700). Returns the directory, then the
    copies' paths; the caller removes the directory."""
    directory = tempfile.mkdtemp(prefix="danerelay-bin-")
    os.chmod(directory, 0o755)
    copies = []
    for program in programs:
        copy = os.path.join(directory, os.path.basename(program))
        shutil.copy2(program, copy)
        os.chmod(copy, 0o755)
        copies.append(copy)
    return [directory, *copies]


class Relay:
    """A danerelayd with its own directory, configuration and queue."""

    def __init__(self, extra_toml="", starttls=False, trusted=None, deliver=False, env=None,
                 sender_checks="domain_exists = false"):
        self.env = env  # extra environment for the daemon (LD_PRELOAD for fault injection)
        self.dir = tempfile.mkdtemp(prefix="danerelay-e2e-")
        self.port = free_port()
        self.tls_port = free_port() if starttls else None
        self.proc = None
        self.log_path = os.path.join(self.dir, "danerelayd.log")
        lines = ['[server]', 'hostname = "relay.test"', '',
                 '[[listener]]', 'address = "127.0.0.1"', f'port = {self.port}', '']
        if starttls:
            self.cert, self.key = make_cert(self.dir)
            lines += ['[[listener]]', 'address = "127.0.0.1"', f'port = {self.tls_port}',
                      'starttls = true', 'cert_file = "relay.crt"', 'key_file = "relay.key"', '']
        if trusted is not None:
            lines += ['[access]', 'trusted_networks = ' + json.dumps(trusted), '']
        lines += ['[queue]', 'path = "queue"', '']
        # Test senders live in domains no DNS knows: the sender checks are off unless a test
        # turns them on (test_sender_checks.py).
        lines += ['[sender_checks]', sender_checks, '']
        if not deliver:
            # Acceptance tests keep their mail: no delivery, hence no DNS beyond loopback.
            lines += ['[delivery]', 'enabled = false', '']
        if "[dns]" not in extra_toml:
            # No DNS world: nothing may leave loopback, so the resolver's self-check (which
            # would ask the root servers) is off; the tests that need DNS bring their own.
            lines += ['[dns]', 'validation_canary = ""', '']
        lines += [extra_toml]
        self.config = os.path.join(self.dir, "danerelay.toml")
        with open(self.config, "w") as f:
            f.write("\n".join(lines))

    def start(self):
        self.log = open(self.log_path, "ab")
        env = dict(os.environ, **self.env) if self.env else None
        self.proc = subprocess.Popen([DANERELAYD, "--config", self.config],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        wait_for_port("127.0.0.1", self.port, proc=self.proc)
        if self.tls_port:
            wait_for_port("127.0.0.1", self.tls_port, proc=self.proc)
        return self

    def kill(self, sig=signal.SIGKILL):
        """Sends `sig` and waits; returns the exit status (None if it was not running)."""
        rc = None
        if self.proc:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
            rc = self.proc.wait(timeout=20)
            self.log.close()
        self.proc = None
        return rc

    def stop(self):
        """A clean shutdown: SIGTERM, exit status 0 (under ASan this also checks for leaks)."""
        rc = self.kill(signal.SIGTERM)
        if rc != 0:
            raise AssertionError(f"danerelayd exited with {rc} on SIGTERM:\n{self.logs()[-3000:]}")

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def close(self):
        """The end of a test class: a clean shutdown (stop), and the files removed even when
        that failed."""
        try:
            self.stop()
        finally:
            self.cleanup()

    def reload(self):
        """SIGHUP, then waits for the daemon to log that it read the configuration again."""
        before = self.logs().count("reloaded configuration")
        self.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: self.logs().count("reloaded configuration") > before, what="the reload")

    def logs(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def cli(self, *args, check=True):
        r = subprocess.run([DANERELAY, "--config", self.config, *args],
                           capture_output=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"danerelay {' '.join(args)} exited {r.returncode}: "
                                 f"{r.stderr.decode(errors='replace')}")
        return r

    def queue_json(self):
        out = self.cli("queue", "list", "--json").stdout.decode()
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def show_json(self, queue_id):
        return json.loads(self.cli("queue", "show", queue_id, "--json").stdout)

    def raw(self, queue_id):
        return self.cli("queue", "show", queue_id, "--raw").stdout


def wait_for(predicate, timeout=20.0, what="condition"):
    """Polls `predicate` every 0.2 s until it holds; an AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def strip_received(raw):
    """The stored message minus the Received header this relay prepended."""
    assert raw.startswith(b"Received: "), raw[:80]
    pos = raw.index(b"\r\n") + 2
    while raw[pos:pos + 1] in (b" ", b"\t"):
        pos = raw.index(b"\r\n", pos) + 2
    return raw[pos:]


def queued_id(reply_text):
    """The queue ID in "Ok: queued as ID"."""
    text = reply_text.decode() if isinstance(reply_text, bytes) else reply_text
    marker = "queued as "
    assert marker in text, text
    return text.split(marker, 1)[1].split()[0]


def raw_session(port, data, source=None, timeout=10):
    """Sends `data` in one write and returns everything the server says until it closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                 source_address=(source, 0) if source else None)
    with s:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return out
