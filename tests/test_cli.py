"""`ivr serve` refuses to start with a clear message, never a traceback."""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def serve(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "ivr.cli", "serve", "--data", str(tmp_path / "d"),
                           *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_busy_sip_port_is_a_clear_error(tmp_path):
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    try:
        r = serve(tmp_path, "--sip", f"127.0.0.1:{port}", "--http", "127.0.0.1:0")
    finally:
        taken.close()
    assert r.returncode == 1
    assert "cannot start" in r.stderr and "Address already in use" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_broken_dialplan_stops_the_start_with_file_line_col(tmp_path):
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "a.yaml").write_text("flows:\n  main:\n    - sya: hi\n")
    r = serve(tmp_path, "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0", "--dialplans", str(plans))
    assert r.returncode == 2
    assert f"{plans / 'a.yaml'}:3:7: unknown verb 'sya'" in r.stderr
    assert "Traceback" not in r.stderr
