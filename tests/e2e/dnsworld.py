"""A local DNSSEC world for end-to-end tests, built at test time on loopback.

A signed root zone ".", a signed "example." below it, and zones below "example." that are each
signed (with a DS in their parent), unsigned (no DS: insecure), bogus (a DS in the parent, but
signatures that expired years ago) or broken (NSD cannot load the zone and answers SERVFAIL). A
zone's parent is the longest other zone it lies in ("_tcp.mx.a.example." below "a.example."),
else "example.". Not "test.": libunbound answers NXDOMAIN for it by
default (RFC 6761 special-use names). NSD serves all of them on 127.0.0.53 at a free port;
libunbound is pointed at it as a forwarder and given the root's DNSKEY as trust anchor, so
validation runs in-process exactly as it would against the real root.
"""
import os
import signal
import subprocess
import time

from harness import free_port, wait_for_port

NSD_ADDRESS = "127.0.0.53"


def run(*args, cwd=None):
    return subprocess.run(list(args), check=True, capture_output=True, cwd=cwd, timeout=60)


class Zone:
    def __init__(self, origin, kind="signed"):
        assert kind in ("signed", "unsigned", "bogus", "servfail")
        self.origin = origin  # "example.example."
        self.kind = kind
        self.records = []

    def add(self, line):
        """A record relative to the zone, e.g. "mx1 A 127.0.0.10" or "@ MX 10 mx1"."""
        self.records.append(line)
        return self

    def mx(self, address, tlsa=None, port=25):
        """The usual delivery zone: "@ MX 10 mx", "mx A address" and, given a TLSA record's
        data, "_port._tcp.mx TLSA data"."""
        self.add("@ MX 10 mx").add(f"mx A {address}")
        if tlsa:
            self.add(f"_{port}._tcp.mx TLSA {tlsa}")
        return self


class DnsWorld:
    def __init__(self, directory):
        self.dir = os.path.join(directory, "dns")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port(NSD_ADDRESS)
        self.zones = {}
        self.proc = None
        self.trust_anchor = os.path.join(self.dir, "root.anchor")

    def zone(self, origin, kind="signed"):
        z = Zone(origin, kind)
        self.zones[origin] = z
        return z

    def _keygen(self, origin, ksk):
        args = ["ldns-keygen", "-a", "ECDSAP256SHA256", "-r", "/dev/urandom"]
        if ksk:
            args.append("-k")
        return run(*args, origin, cwd=self.dir).stdout.decode().strip()

    def _write_and_sign(self, origin, body, kind, serial=1):
        name = "root" if origin == "." else origin.rstrip(".")
        path = os.path.join(self.dir, f"{name}.zone")
        soa = (f"$ORIGIN {origin}\n$TTL 300\n"
               f"@ SOA ns.example. hostmaster.example. {serial} 3600 600 86400 300\n"
               f"@ NS ns.example.\n")
        with open(path, "w") as f:
            f.write("this is not a zone file\n" if kind == "servfail" else soa + body)
        if kind in ("unsigned", "servfail"):
            return path, None
        ksk = self._keygen(origin, True)
        zsk = self._keygen(origin, False)
        args = ["ldns-signzone", "-f", path + ".signed"]
        if kind == "bogus":
            args += ["-i", "20190101", "-e", "20200101"]  # signatures long expired
        run(*args, path, ksk, zsk, cwd=self.dir)
        with open(os.path.join(self.dir, ksk + ".ds")) as f:
            ds = f.read().strip()
        with open(os.path.join(self.dir, ksk + ".key")) as f:
            dnskey = f.read().strip()
        return path + ".signed", (ds, dnskey)

    def _parent(self, origin):
        inside = [o for o in self.zones if o != origin and origin.endswith("." + o)]
        return max(inside, key=len) if inside else "example."

    def start(self):
        # Deepest zones first, so that each one's DS can go into its parent, then "example." into
        # the root.
        files = {}
        delegations = {"example.": f"ns A {NSD_ADDRESS}\n"}
        for origin in sorted(self.zones, key=lambda o: o.count("."), reverse=True):
            z = self.zones[origin]
            body = "".join(r + "\n" for r in z.records) + delegations.get(origin, "")
            path, keys = self._write_and_sign(origin, body, z.kind)
            files[origin] = path
            parent = self._parent(origin)
            label = origin[: -len("." + parent)]
            cut = f"{label} NS ns.example.\n" + (keys[0] + "\n" if keys else "")  # DS: absolute
            delegations[parent] = delegations.get(parent, "") + cut
        test_body = delegations["example."]
        files["example."], test_keys = self._write_and_sign("example.", test_body, "signed")
        root_body = f"example. NS ns.example.\nns.example. A {NSD_ADDRESS}\n{test_keys[0]}\n"
        files["."], root_keys = self._write_and_sign(".", root_body, "signed")
        with open(self.trust_anchor, "w") as f:
            f.write(root_keys[1] + "\n")

        conf = os.path.join(self.dir, "nsd.conf")
        with open(conf, "w") as f:
            f.write(f"""server:
  ip-address: {NSD_ADDRESS}@{self.port}
  username: ""
  chroot: ""
  zonesdir: "{self.dir}"
  pidfile: "{self.dir}/nsd.pid"
  database: ""
  zonelistfile: "{self.dir}/zone.list"
  xfrdfile: "{self.dir}/xfrd.state"
  xfrdir: "{self.dir}"
  logfile: "{self.dir}/nsd.log"
  server-count: 1
  verbosity: 1
remote-control:
  control-enable: no
""")
            for origin, path in files.items():
                f.write(f'zone:\n  name: "{origin}"\n  zonefile: "{path}"\n')
        with open(os.path.join(self.dir, "nsd.stderr"), "wb") as err:
            self.proc = subprocess.Popen(["nsd", "-d", "-c", conf], stdout=subprocess.DEVNULL,
                                         stderr=err)
        self._wait_udp()
        return self

    def _wait_udp(self, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nsd exited: " + open(os.path.join(self.dir, "nsd.stderr")).read()
                                   + open(os.path.join(self.dir, "nsd.log")).read())
            r = subprocess.run(["dig", "+short", "+time=1", "+tries=1", "-p", str(self.port),
                                f"@{NSD_ADDRESS}", "example.", "SOA"], capture_output=True)
            if r.returncode == 0 and r.stdout.strip():
                return
            time.sleep(0.1)
        raise TimeoutError("nsd did not answer")

    def update_unsigned(self, origin, check_name, check_type, expect, timeout=15):
        """Rewrites the unsigned zone `origin` from its (changed) records, makes NSD reload it
        (SIGHUP) and waits until `check_name` answers with `expect` in it."""
        z = self.zones[origin]
        assert z.kind == "unsigned"
        self._write_and_sign(origin, "".join(r + "\n" for r in z.records), "unsigned",
                             serial=int(time.time()))
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = subprocess.run(["dig", "+short", "+time=1", "+tries=1", "-p", str(self.port),
                                f"@{NSD_ADDRESS}", check_name, check_type], capture_output=True)
            if expect in r.stdout.decode():
                return
            time.sleep(0.2)
        raise TimeoutError(f"nsd did not reload {origin}")

    def toml(self):
        """The [dns] section that points danerelay at this world."""
        return (f'[dns]\ntrust_anchor_file = "{self.trust_anchor}"\n'
                f'forwarders = ["{NSD_ADDRESS}@{self.port}"]\n')

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.proc = None
