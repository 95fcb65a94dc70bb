"""B8 (a farm behind Kamailio) as a functional check: ``bench/run.py --quick --only B8`` with
one short step against 1 and 2 real nodes (keys only: the figures differ per machine)."""
import json
import subprocess
import sys

from bench.common import ROOT

KEYS = ["setup_rate_cps_1_node", "setup_rate_cps_2_nodes", "invite_to_200_p99_ms_1_node",
        "invite_to_200_p99_ms_2_nodes", "failed_calls", "kamailio_cpu_us_per_call",
        "kamailio_cpu_percent_at_held_2_nodes", "one_node", "two_nodes"]


def test_tiny_b8_farm_run_has_its_keys(tmp_path):
    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--only", "B8",
                           "--seconds", "1", "--results", str(results), "--work", str(tmp_path / "w")],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    data = json.loads((results / "b8_farm.json").read_text())
    figures = data["figures"]
    missing = [k for k in KEYS if k not in figures]
    assert not missing, missing
    assert [len(n) for n in (figures["one_node"]["cores"], figures["two_nodes"]["cores"])] == [1, 2]
    for result in (figures["one_node"], figures["two_nodes"]):
        step = result["steps"][0]
        assert step["calls"] == step["successful"] + step["failed"] and step["calls"] > 0
        assert len(step["node_cpu_percent"]) == len(result["cores"])
    assert "| B8 | farm: failed calls (held steps) |" in proc.stdout
