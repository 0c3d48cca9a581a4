"""A test case class for end-to-end tests in a DNS world: one relay, MX servers and helpers
that a class builds in `build()`, all stopped (by their own stop methods) when the class ends,
also when building failed half-way."""
import json
import os
import shutil
import tempfile
import unittest


class Process:
    """A helper program the test started (subprocess.Popen), stopped like the servers."""

    def __init__(self, popen):
        self.popen = popen

    def stop(self):
        self.popen.terminate()
        self.popen.wait(timeout=10)


class WorldCase(unittest.TestCase):
    relay = None    # the danerelayd under test (harness.Relay)
    world = None    # the DnsWorld
    servers = {}    # name -> anything with stop(): MX servers, policy servers
    tmp = None      # a directory removed at the end

    @classmethod
    def setUpClass(cls):
        cls.servers = {}
        try:
            cls.build()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def build(cls):
        raise NotImplementedError

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.relay:
                if os.environ.get("KEEP"):
                    print(cls.relay.logs())
                cls.relay.stop()
        finally:
            if cls.relay:
                cls.relay.cleanup()
            for s in cls.servers.values():
                if s:
                    s.stop()
            if cls.world:
                cls.world.stop()
            if cls.tmp:
                shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def scratch(cls, prefix):
        """Makes the class's temporary directory (removed at the end); returns its certs/."""
        cls.tmp = tempfile.mkdtemp(prefix=prefix)
        certs = os.path.join(cls.tmp, "certs")
        os.makedirs(certs)
        return certs

    @classmethod
    def show(cls, queue_id, relay=None):
        """`queue show ID --json`."""
        return json.loads((relay or cls.relay).cli("queue", "show", queue_id, "--json").stdout)
