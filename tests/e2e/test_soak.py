"""The 2-minute form of tools/soak.sh: load with SIGKILLs, a SIGHUP and a SIGTERM, then every
acknowledged recipient reconciled (delivered once or bounced once; duplicates only where a kill
explains them) and the daemon's descriptors and memory checked while idle."""
import os
import subprocess
import sys
import unittest

SOAK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "soak.py")


class SoakTest(unittest.TestCase):
    def test_two_minutes_with_faults_lose_nothing(self):
        r = subprocess.run([sys.executable, SOAK, "--minutes", "2", "--rate", "8",
                            "--kill-every", "30"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=540)
        out = r.stdout.decode(errors="replace")
        print(out)
        self.assertEqual(r.returncode, 0, "the soak found problems (see its report above)")
        self.assertIn("Reconciliation", out)


if __name__ == "__main__":
    unittest.main()
