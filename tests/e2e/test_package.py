"""End to end, issue 23: the Debian package. tools/package.sh makes danerelay_VERSION_ARCH.deb
from the build directory; dpkg-deb shows its control data, conffiles and files. Then it goes
into a fresh Debian 12 (a minbase debootstrap chroot, unpacked from the tarball that
tools/debian/bookworm-chroot.sh makes once and caches): apt installs it with its dependencies
from the Debian archive, `danerelay config check` passes, danerelayd runs as the package's
account and answers EHLO, and apt remove and purge leave nothing of it behind. Once more with
systemd installed: the account then comes from systemd-sysusers.

Needs root (chroot, mount) and the Debian archive (apt in the chroot; the first run also
debootstraps, a few minutes). The daemon in the chroot shares this network namespace and
listens on 127.0.0.1 only."""
import os
import re
import shutil
import signal
import smtplib
import subprocess
import tempfile
import unittest

from harness import DANERELAYD, free_port, wait_for_port
from readme import readme_block

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_DIR = os.environ.get("DANERELAY_BUILD_DIR",
                           os.path.dirname(os.path.dirname(os.path.abspath(DANERELAYD))))
CONFIG = "/etc/danerelay/danerelay.toml"
MARKER = "/etc/danerelay/NOT-CONFIGURED"
UNIT = "/lib/systemd/system/danerelay.service"
QUEUE = "/var/lib/danerelay"
FILES = {CONFIG, UNIT, "/usr/bin/danerelay", "/usr/sbin/danerelayd",
         "/usr/lib/sysusers.d/danerelay.conf", "/usr/share/doc/danerelay/README.md",
         "/usr/share/doc/danerelay/danerelay.example.toml", "/usr/share/man/man5/danerelay.toml.5",
         "/usr/share/man/man7/danerelay.7", "/usr/share/man/man8/danerelay.8",
         "/usr/share/man/man8/danerelayd.8"}
CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C",
              "DEBIAN_FRONTEND": "noninteractive", "HOME": "/root"}


def run(*cmd, timeout=60, **kwargs):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert r.returncode == 0, f"{cmd}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def package_names(depends):
    """The package names a Depends field accepts, alternatives included, versions dropped."""
    return {alt.split()[0] for dep in depends.split(",") for alt in dep.split("|")}


def providers(soname):
    """The names a dependency on the host's package of a shared library may use: the package
    (found from ldconfig's path, usrmerge aware) and the virtual packages it provides (bookworm's
    libspdlog1.10 provides libspdlog1.10-fmt9, the name its shlibs file gives)."""
    path = re.search(rf"\s{re.escape(soname)} \(.*\) => (\S+)", run("ldconfig", "-p")).group(1)
    for candidate in (path, path.removeprefix("/usr"), "/usr" + path):
        r = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True, timeout=30)
        if r.returncode == 0:
            package = r.stdout.split(":")[0]
            provides = run("dpkg-query", "-W", "-f=${Provides}", package)
            return {package} | package_names(provides) if provides else {package}
    raise AssertionError(f"no package provides {soname} ({path})")


class Chroot:
    """A Debian 12 unpacked into a fresh directory, with /proc mounted. close() ends every
    process whose root is this directory, unmounts and deletes it."""

    def __init__(self, tarball):
        self.root = tempfile.mkdtemp(prefix="danerelay-chroot-", dir="/var/tmp")
        self.proc_mounted = False
        run("tar", "-xf", tarball, "-C", self.root, "--numeric-owner", timeout=300)
        shutil.copy("/etc/resolv.conf", self.path("/etc/resolv.conf"))
        run("mount", "-t", "proc", "proc", self.path("/proc"))
        self.proc_mounted = True

    def path(self, inside):
        return os.path.join(self.root, inside.lstrip("/"))

    def command(self, *cmd):
        return ["/usr/sbin/chroot", self.root, *cmd]

    def run(self, *cmd, timeout=60):
        return run(*self.command(*cmd), timeout=timeout, env=CHROOT_ENV)

    def account(self, name):
        with open(self.path("/etc/passwd")) as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if fields[0] == name:
                    return fields
        return None

    def _our_processes(self):
        pids = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.readlink(f"/proc/{pid}/root") == self.root:
                    pids.append(int(pid))
            except OSError:
                pass
        return pids

    def close(self):
        for pid in self._our_processes():
            os.kill(pid, signal.SIGKILL)
        if self.proc_mounted:
            if subprocess.run(["umount", self.path("/proc")], timeout=30).returncode != 0:
                subprocess.run(["umount", "-l", self.path("/proc")], timeout=30, check=True)
        mounts = run("findmnt", "-rn", "-o", "TARGET")
        assert self.root + "/" not in mounts, f"still mounted below {self.root}:\n{mounts}"
        subprocess.run(["rm", "-rf", "--one-file-system", self.root], timeout=120, check=True)


class PackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.deb = run(os.path.join(SOURCE, "tools/package.sh"), BUILD_DIR,
                      timeout=900).strip().splitlines()[-1]
        cls.control = run("dpkg-deb", "-f", cls.deb)

    def field(self, name):
        return re.search(rf"(?m)^{name}: (.*)$", self.control).group(1)

    def test_control_conffiles_and_files(self):
        version = run(DANERELAYD, "--version").split()[1]
        arch = run("dpkg", "--print-architecture").strip()
        self.assertEqual(os.path.basename(self.deb), f"danerelay_{version}_{arch}.deb")
        self.assertEqual((self.field("Package"), self.field("Version"), self.field("Architecture")),
                         ("danerelay", version, arch))
        depends = package_names(self.field("Depends"))
        # From dpkg-shlibdeps: the package of every library the programs need, found here.
        for program in ("danerelayd", "danerelay"):
            binary = DANERELAYD if program == "danerelayd" else os.environ["DANERELAY"]
            for soname in re.findall(r"\(NEEDED\)\s+Shared library: \[(.+)\]",
                                     run("readelf", "-d", binary)):
                self.assertTrue(providers(soname) & depends, f"{program} needs {soname}")
        self.assertTrue({"libunbound8", "libssl3", "libsqlite3-0", "dns-root-data",
                         "adduser"} <= depends, depends)

        with tempfile.TemporaryDirectory() as d:
            run("dpkg-deb", "--control", self.deb, d)
            with open(os.path.join(d, "conffiles")) as f:
                self.assertEqual(f.read().split(), [CONFIG])
            for script in ("postinst", "prerm", "postrm"):
                self.assertEqual(os.stat(os.path.join(d, script)).st_mode & 0o777, 0o755)
        listing = run("dpkg-deb", "--contents", self.deb)
        files = {line.split()[-1].removeprefix(".") for line in listing.splitlines()
                 if line.startswith("-")}
        self.assertEqual(files, FILES)
        self.assertNotIn("/var/lib/danerelay", listing, "the queue is made by postinst")
        self.check_contents()

    def check_contents(self):
        with tempfile.TemporaryDirectory() as d:
            run("dpkg-deb", "--extract", self.deb, d)
            for program in ("usr/sbin/danerelayd", "usr/bin/danerelay"):
                sections = run("readelf", "-S", "--wide", os.path.join(d, program))
                self.assertNotIn(".symtab", sections, f"{program} is not stripped")
                self.assertNotIn(".debug_info", sections, f"{program} is not stripped")
            with open(os.path.join(d, UNIT.lstrip("/"))) as f:
                unit = f.read()
            self.assertIn(f"ExecStart=/usr/sbin/danerelayd --config {CONFIG}\n", unit)
            self.assertIn(f"ConditionPathExists=!{MARKER}\n", unit)
            with open(os.path.join(d, CONFIG.lstrip("/"))) as f:
                self.assertRegex(f.read(), rf'(?m)^path = "{QUEUE}"')

    def test_install_run_remove_purge_in_debian_12(self):
        tarball = run(os.path.join(SOURCE, "tools/debian/bookworm-chroot.sh"), timeout=1200)
        chroot = Chroot(tarball.strip())
        try:
            shutil.copy(self.deb, chroot.path("/tmp"))
            chroot.run("apt-get", "update", "-q", timeout=300)
            out = chroot.run("apt-get", "install", "-y", "-q",
                             "/tmp/" + os.path.basename(self.deb), timeout=600)
            self.assertIn(f"rm {MARKER} && systemctl start danerelay", out)
            self.check_installed(chroot)
            self.configure_like_an_operator(chroot)
            self.run_daemon_as_the_account(chroot)
            self.check_removed(chroot)
            self.check_purged(chroot)
            self.check_account_from_sysusers(chroot)
        finally:
            chroot.close()

    def check_installed(self, chroot):
        status = chroot.run("dpkg-query", "-W", "-f=${Status}", "danerelay")
        self.assertEqual(status, "install ok installed")
        self.assertEqual(set(chroot.run("dpkg", "-L", "danerelay").split()) & FILES, FILES)
        account = chroot.account("danerelay")
        self.assertIsNotNone(account, "postinst made no danerelay account")
        self.assertLess(int(account[2]), 1000, "not a system account")
        self.assertEqual(account[5], QUEUE)
        queue = os.stat(chroot.path(QUEUE))
        self.assertEqual((queue.st_mode & 0o777, queue.st_uid), (0o700, int(account[2])))
        self.assertTrue(os.path.exists(chroot.path(MARKER)))
        wants = chroot.path("/etc/systemd/system/multi-user.target.wants/danerelay.service")
        self.assertEqual(os.readlink(wants), UNIT, "the service is not enabled")
        # The installed configuration is valid as shipped (found without --config).
        self.assertIn(f"{CONFIG}: ok", chroot.run("danerelay", "config", "check"))

    def configure_like_an_operator(self, chroot):
        """What README.md tells an operator to do: edit, check, remove the marker."""
        steps = "\n".join(readme_block("As a Debian package"))
        self.assertIn("danerelay config check", steps)
        self.assertIn(f"rm {MARKER} && systemctl start danerelay", steps)
        with open(chroot.path(CONFIG)) as f:
            text = f.read()
        # A free port; no DNS beyond loopback: no delivery, no resolver self-check.
        self.port = free_port()
        edits = [(r"(?m)^port = 2525", f"port = {self.port}"),
                 (r"\[delivery\]\nenabled = true[^\n]*", "[delivery]\nenabled = false"),
                 (r'validation_canary = "\."', 'validation_canary = ""')]
        for pattern, replacement in edits:
            text, n = re.subn(pattern, replacement, text, count=1)
            self.assertEqual(n, 1, pattern)
        with open(chroot.path(CONFIG), "w") as f:
            f.write(text)
        self.assertIn(f"{CONFIG}: ok", chroot.run("danerelay", "config", "check"))
        os.unlink(chroot.path(MARKER))

    def run_daemon_as_the_account(self, chroot):
        uid, gid = chroot.account("danerelay")[2:4]
        log = open(os.path.join(chroot.root, "tmp/danerelayd.log"), "wb")
        # setpriv execs: the PID is the daemon's own.
        proc = subprocess.Popen(chroot.command("setpriv", f"--reuid={uid}", f"--regid={gid}",
                                               "--clear-groups", "danerelayd", "--config", CONFIG),
                                stdout=log, stderr=subprocess.STDOUT, env=CHROOT_ENV)
        try:
            wait_for_port("127.0.0.1", self.port, timeout=30, proc=proc)
            with open(f"/proc/{proc.pid}/status") as f:
                uids = re.search(r"(?m)^Uid:\s+(.*)$", f.read()).group(1).split()
            self.assertEqual(uids, [uid] * 4)
            self.assertEqual(os.readlink(f"/proc/{proc.pid}/exe"), chroot.path("/usr/sbin/danerelayd"))
            with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as c:
                code, _ = c.ehlo("client.test")
                self.assertEqual(code, 250)
            os.kill(proc.pid, signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=60), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
            log.close()
        self.assertEqual(os.stat(chroot.path(QUEUE + "/queue.db")).st_uid, int(uid))

    def check_removed(self, chroot):
        chroot.run("apt-get", "remove", "-y", "-q", "danerelay", timeout=300)
        status = chroot.run("dpkg-query", "-W", "-f=${Status}", "danerelay")
        self.assertEqual(status, "deinstall ok config-files")
        self.assertFalse(os.path.exists(chroot.path("/usr/sbin/danerelayd")))
        self.assertTrue(os.path.exists(chroot.path(CONFIG)), "remove must keep the conffile")
        self.assertTrue(os.path.exists(chroot.path(QUEUE + "/queue.db")), "remove keeps the queue")
        self.assertEqual(os.readlink(chroot.path("/etc/systemd/system/danerelay.service")),
                         "/dev/null", "the unit is not masked while its configuration stays")

    def check_purged(self, chroot):
        chroot.run("apt-get", "purge", "-y", "-q", "danerelay", timeout=300)
        listed = subprocess.run(chroot.command("dpkg", "-L", "danerelay"), capture_output=True,
                                text=True, timeout=60, env=CHROOT_ENV)
        self.assertNotEqual(listed.returncode, 0)
        self.assertEqual(listed.stdout, "")
        for gone in ("/etc/danerelay", QUEUE, "/usr/sbin/danerelayd", UNIT):
            self.assertFalse(os.path.lexists(chroot.path(gone)), f"{gone} after purge")
        leftovers = [os.path.join(d, n) for top in ("/etc", "/var/lib", "/lib", "/usr")
                     for d, dirs, names in os.walk(chroot.path(top)) for n in dirs + names
                     if "danerelay" in n]
        self.assertEqual(leftovers, [])
        # The account stays (Debian policy for system accounts), nothing else.
        self.assertIsNotNone(chroot.account("danerelay"))

    def check_account_from_sysusers(self, chroot):
        """With systemd installed, postinst makes the account with systemd-sysusers from the
        package's sysusers.d entry: adduser is replaced by a stand-in that fails if called."""
        chroot.run("userdel", "danerelay")
        self.assertIsNone(chroot.account("danerelay"))
        chroot.run("apt-get", "install", "-y", "-q", "--no-install-recommends", "systemd",
                   timeout=300)
        chroot.run("dpkg-divert", "--quiet", "--rename", "--add", "/usr/sbin/adduser")
        with open(chroot.path("/usr/sbin/adduser"), "w") as f:
            f.write("#!/bin/sh\necho 'adduser called' >&2\nexit 1\n")
        os.chmod(chroot.path("/usr/sbin/adduser"), 0o755)
        chroot.run("apt-get", "install", "-y", "-q", "/tmp/" + os.path.basename(self.deb),
                   timeout=300)
        account = chroot.account("danerelay")
        self.assertIsNotNone(account, "no account with systemd-sysusers")
        self.assertEqual((account[4], account[5]), ("danerelay outbound SMTP relay", QUEUE))
        queue = os.stat(chroot.path(QUEUE))
        self.assertEqual((queue.st_mode & 0o777, queue.st_uid), (0o700, int(account[2])))
        chroot.run("apt-get", "purge", "-y", "-q", "danerelay", timeout=300)
        self.assertFalse(os.path.lexists(chroot.path(QUEUE)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
