"""``ivr trace CALL_ID`` against a finished call: from the data directory's CDR store, and
from a running server's API (--api, the way to see a call in progress)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ivr.cli import main
from ivr.store.cdr import CdrStore
from ivr.store.db import Database

from .builder_server import ADMIN_KEY, USER_KEY
from .test_builder_trace import PLANS, run_menu

ROOT = Path(__file__).resolve().parents[2]


def finished_call(data: Path, plans: Path, leg_id: str = "a84b4c76e66710@pc33.example") -> str:
    """A CDR as the server writes it for a toll-free call that pressed 2 (the runner's own
    path log, with the plans loaded from ``plans``)."""
    shutil.copytree(PLANS, plans, dirs_exist_ok=True)
    call = run_menu("2")
    path = [p.replace(str(PLANS), str(plans)) for p in call.path]
    db = Database(data / "ivr.sqlite3", threaded=False)
    CdrStore(db).record({"leg_id": leg_id, "direction": "inbound", "outcome": "answered",
                         "from_number": "+12125551234", "to_number": "+18005550100",
                         "route": "number:+18005550100", "flow": "main_menu",
                         "setup_at": 1_700_000_000.0, "end_at": 1_700_000_040.0,
                         "digits": call.gathered, "path": path})
    db.close()
    return leg_id


def test_trace_of_a_finished_call_from_the_data_directory(tmp_path, capsys):
    plans = tmp_path / "dialplans"
    leg = finished_call(tmp_path, plans)
    rc = main(["trace", leg, "--data", str(tmp_path), "--dialplans", str(plans),
               "--config", str(tmp_path / "config")])
    out = capsys.readouterr().out
    assert rc == 0, out
    lines = out.splitlines()
    assert lines[0] == (f"call {leg}  state ended  outcome answered  from +12125551234  "
                        "to +18005550100  route number:+18005550100  flow main_menu  digits 2")
    assert lines[3].split() == ["3.", "tollfree.yaml:13", "main_menu:", "menu", "—", "pressed",
                                "2", "→", "support"]
    assert lines[4].split()[:3] == ["4.", "tollfree.yaml:33", "support:"]
    rc = main(["trace", leg, "--data", str(tmp_path), "--dialplans", str(plans), "--json",
               "--config", str(tmp_path / "config")])
    trace = json.loads(capsys.readouterr().out)
    assert trace["steps"][2] == {"step": "tollfree.yaml:13", "at": "tollfree.yaml:13:7",
                                 "flow": "main_menu", "verb": "menu",
                                 "notes": ["pressed 2 → support"]}


def test_unknown_call_and_missing_store_say_why(tmp_path, capsys):
    assert main(["trace", "nope", "--data", str(tmp_path / "empty"),
                 "--config", str(tmp_path)]) == 1
    assert "no CDR store in" in capsys.readouterr().err
    finished_call(tmp_path, tmp_path / "dialplans")
    assert main(["trace", "nope", "--data", str(tmp_path), "--config", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no CDR for 'nope'" in err and "--api" in err
    assert main(["trace", "x", "--data", str(tmp_path), "--database", "mysql://x",
                 "--config", str(tmp_path)]) == 1
    assert "--database" in capsys.readouterr().err


@pytest.fixture
def server(tmp_path):
    leg = finished_call(tmp_path, tmp_path / "dialplans")
    proc = subprocess.Popen([sys.executable, "-m", "tests.api.builder_server", str(tmp_path)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("PORT "), proc.stderr.read()
    yield f"http://127.0.0.1:{int(line.split()[1])}", leg
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)


def trace_cmd(*args, key):
    env = {k: v for k, v in os.environ.items() if k != "IVR_API_KEY"}
    if key:
        env["IVR_API_KEY"] = key
    return subprocess.run([sys.executable, "-m", "ivr.cli", "trace", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)


def test_trace_from_the_running_server(server):
    url, leg = server
    done = trace_cmd(leg, "--api", url, key=ADMIN_KEY)
    assert done.returncode == 0, done.stderr
    assert "tollfree.yaml:13  main_menu: menu  — pressed 2 → support" in done.stdout
    done = trace_cmd("nope", "--api", url, key=ADMIN_KEY)
    assert done.returncode == 1 and "404: no active call or CDR" in done.stderr
    done = trace_cmd(leg, "--api", url, key=USER_KEY)
    assert done.returncode == 1 and done.stderr.startswith("ivr trace: 403")
    assert "IVR_API_KEY" in trace_cmd(leg, "--api", url, key=None).stderr
