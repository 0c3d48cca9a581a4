"""End to end, issue 10: SIGTERM. The daemon stops accepting; a session waiting for a command
gets "421 4.3.2" at once; a session in the middle of DATA may finish its message (250, then
421); a delivery in flight finishes and is recorded (not delivered again after a restart);
every session logs its disconnect; the daemon exits 0, in bounded time."""
import signal
import smtplib
import socket
import time
import unittest

from harness import Relay, queued_id, wait_for
from mx import MxServer, free_port_on

MX_IP = "127.0.0.52"


def read_reply(s, timeout=10):
    s.settimeout(timeout)
    out = b""
    while not out.endswith(b"\r\n") or out.split(b"\r\n")[-2][3:4] == b"-":
        chunk = s.recv(4096)
        if not chunk:
            break
        out += chunk
    return out


class ShutdownTest(unittest.TestCase):
    def test_sigterm_lets_data_and_deliveries_finish(self):
        port = free_port_on([MX_IP])
        mx = MxServer(MX_IP, port, data_delay=2.0).start()  # each DATA takes 2 s
        relay = Relay(deliver=True, extra_toml=f"""
[routes]
"slow.example" = "[{MX_IP}]:{port}"
"held.example" = "[127.0.0.1]:1"  # nothing listens: deferred, no DNS
""").start()
        try:
            # A delivery in flight: the MX holds its DATA reply for 2 s.
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=10) as c:
                c.ehlo("a.example")
                c.mail("a@a.example")
                c.rcpt("user@slow.example")
                code, reply = c.data(b"Subject: in flight\r\n\r\nx\r\n")
                self.assertEqual(code, 250, reply)
                in_flight = queued_id(reply)
            wait_for(lambda: mx.recorder.in_data == 1, timeout=10, what="the MX in DATA")

            idle = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
            self.assertTrue(read_reply(idle).startswith(b"220 "))
            idle.sendall(b"EHLO idle.example\r\n")
            self.assertIn(b"250 ", read_reply(idle))

            busy = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
            read_reply(busy)
            busy.sendall(b"EHLO busy.example\r\nMAIL FROM:<b@b.example>\r\n"
                         b"RCPT TO:<user@held.example>\r\nDATA\r\n")
            got = b""
            while b"354 " not in got:
                got += read_reply(busy)
            busy.sendall(b"Subject: half way\r\n\r\nfirst half\r\n")

            started = time.monotonic()
            relay.proc.send_signal(signal.SIGTERM)
            # The idle session is told at once.
            self.assertTrue(read_reply(idle, 5).startswith(b"421 4.3.2 "), "no 421 for idle")
            # The busy one finishes its message: 250, then 421.
            time.sleep(0.5)
            busy.sendall(b"second half\r\n.\r\n")
            final = read_reply(busy, 10)
            while b"421 " not in final:
                more = read_reply(busy, 10)
                if not more:
                    break
                final += more
            self.assertIn(b"250 2.0.0 Ok: queued as ", final)
            self.assertIn(b"421 4.3.2 ", final)
            held = queued_id(final.split(b"\r\n")[0])
            self.assertEqual(relay.proc.wait(timeout=40), 0)
            self.assertLess(time.monotonic() - started, 30)
            idle.close()
            busy.close()
            relay.proc = None
            relay.log.close()

            logs = relay.logs()
            marker = "terminating on signal 15: 2 session(s) open, 1 message(s) in delivery"
            self.assertIn(marker, logs)
            self.assertEqual(logs.split(marker, 1)[1].count("disconnect from"), 2, logs[-2000:])
            # The delivery in flight finished and was recorded: delivered once, not again.
            self.assertEqual(len(mx.received_for("user@slow.example")), 1)
            relay.start()
            listed = {m["id"]: m for m in relay.queue_json()}
            self.assertNotIn(in_flight, listed)  # delivered: no longer pending
            self.assertIn(held, listed)
            time.sleep(1)
            self.assertEqual(len(mx.received_for("user@slow.example")), 1)
            relay.stop()
        finally:
            relay.cleanup()
            mx.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
