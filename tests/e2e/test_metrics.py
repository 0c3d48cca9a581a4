"""End to end: the metrics endpoint cannot starve the SMTP listeners (issue 20).

The daemon runs with a small file-descriptor limit (hard limit 160, so it cannot raise it).
200 idle connections to the metrics port must not use up its descriptors: those beyond the
endpoint's connection limit are closed at once, the others when their request deadline passes,
and an SMTP client is greeted all the while. A scrape still works afterwards."""
import resource
import select
import socket
import subprocess
import time
import unittest
import urllib.request

from harness import DANERELAYD, Relay, free_port, wait_for_port

FD_LIMIT = 160
IDLE = 200
LIMIT = 8  # the endpoint's connection limit (relay/daemon/metrics_server.hpp)


class LimitedRelay(Relay):
    """A Relay whose daemon starts under a hard RLIMIT_NOFILE of FD_LIMIT."""

    def start(self):
        def lower():
            resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))

        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([DANERELAYD, "--config", self.config], stdout=self.log,
                                     stderr=subprocess.STDOUT, preexec_fn=lower)
        wait_for_port("127.0.0.1", self.port, proc=self.proc)
        return self


def closed_by_peer(sock, timeout):
    """Whether the daemon closes `sock` within `timeout` seconds (EOF or a reset)."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


class MetricsEndpointTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.metrics_port = free_port()
        cls.relay = LimitedRelay(extra_toml=f"""
[metrics]
address = "127.0.0.1"
port = {cls.metrics_port}
""").start()
        wait_for_port("127.0.0.1", cls.metrics_port, proc=cls.relay.proc)

    @classmethod
    def tearDownClass(cls):
        cls.relay.stop()
        cls.relay.cleanup()

    def greeting(self, timeout):
        with socket.create_connection(("127.0.0.1", self.relay.port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(512)

    def test_idle_connections_beyond_the_limit_do_not_block_the_smtp_greeting(self):
        self.assertTrue(self.greeting(10).startswith(b"220 "))
        idle = []
        try:
            for _ in range(IDLE):
                idle.append(socket.create_connection(("127.0.0.1", self.metrics_port),
                                                     timeout=10))
            # The endpoint's request deadline is 10 s: the greeting must come well before
            # any idle connection ends by itself.
            started = time.monotonic()
            self.assertTrue(self.greeting(5).startswith(b"220 "), "no SMTP greeting")
            self.assertLess(time.monotonic() - started, 8)
            # All are closed by the daemon: those beyond the limit at once, the others when
            # their request deadline (10 s) has passed.
            deadline = time.monotonic() + 60
            open_ones = list(idle)
            while open_ones and time.monotonic() < deadline:
                readable, _, _ = select.select(open_ones, [], [], 1)
                open_ones = [s for s in open_ones if s not in readable or not closed_by_peer(s, 1)]
            self.assertEqual(len(open_ones), 0, "idle metrics connections never closed")
        finally:
            for s in idle:
                s.close()
        logs = self.relay.logs()
        self.assertIn(f"metrics: {LIMIT} connections open; closing new ones", logs)
        # The endpoint still answers.
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=20) as r:
            self.assertIn(b"danerelay_queue_up 1", r.read())


if __name__ == "__main__":
    unittest.main(verbosity=2)
