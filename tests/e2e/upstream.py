"""The relay an upstream MTA (Postfix, Exim) hands its mail to in the upstream tests: no client
is trusted by address, a submission listener on 127.0.0.1 requires STARTTLS and AUTH, and
delivery goes into the test's DNS world on `port`."""
import glob
import os
import subprocess

from harness import DANERELAY, Relay, wait_for_port
from mx import free_port_on


def submission_relay(world, port):
    """The relay (not started) and its submission port."""
    submission = free_port_on(["127.0.0.1"])
    relay = Relay(starttls=True, trusted=[], deliver=True, extra_toml=world.toml() + f"""
[auth]
users_file = "users"
[[listener]]
address = "127.0.0.1"
port = {submission}
starttls = true
require_tls = true
cert_file = "relay.crt"
key_file = "relay.key"
[delivery]
port = {port}
""")
    return relay, submission


def start_with_account(relay, submission, user, password):
    """Gives the relay the upstream's account (`danerelay passwd`), starts it and waits for the
    submission port."""
    r = subprocess.run([DANERELAY, "--config", relay.config, "passwd", user],
                       input=password.encode() + b"\n", capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    relay.start()
    wait_for_port("127.0.0.1", submission)


def maildir_messages(mail_dir, user):
    """The messages the upstream MTA delivered to `user`'s Maildir below `mail_dir`, oldest
    first by name."""
    out = []
    for path in sorted(glob.glob(os.path.join(mail_dir, user, "new", "*"))):
        with open(path, "rb") as f:
            out.append(f.read())
    return out
