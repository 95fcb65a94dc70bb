"""STYLE rule 1: the protocol modules never import twisted.internet (checked in a fresh interpreter)."""
import subprocess
import sys

PURE = ["ivr.rtp.packet", "ivr.rtp.stats", "ivr.rtp.rtcp", "ivr.rtp.dtmf", "ivr.media.g711", "ivr.media.player"]


def test_pure_modules_do_not_import_twisted():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in PURE)
            + "bad = [m for m in sys.modules if m.startswith('twisted')]\n"
            + "print(bad)\nraise SystemExit(1 if bad else 0)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
