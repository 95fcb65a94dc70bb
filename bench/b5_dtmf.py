"""B5 in-band DTMF detection cost and Q.24 accuracy: bench/bench_inband_dtmf.py, reused.
Quick mode times a smaller bank and carries the Q.24 table of the last full run
(bench/results/inband_dtmf.json); full mode runs the whole script (which rewrites that file)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from . import common

TARGETS = {"us_per_channel_frame": "<= 5"}


def run(work: Path, mode: str, context: dict) -> dict:
    if mode == "quick":
        sys.path.insert(0, str(common.BENCH))
        import bench_inband_dtmf as b
        speed = b.bench_speed(1000, 60)
        worst = b.bench_speed(1000, 30, all_tones=True)
        figures = {"channels": 1000, "frames": 60, "us_per_channel_frame": speed["mean_us"],
                   "typical": speed, "worst_case_every_channel_in_a_digit": worst}
    else:
        subprocess.run([sys.executable, str(common.BENCH / "bench_inband_dtmf.py")], check=True,
                       cwd=common.ROOT)
        figures = {}
    try:
        last = json.loads((common.BENCH / "results" / "inband_dtmf.json").read_text())
    except (OSError, ValueError):
        last = {}
    if mode != "quick":
        figures = {k: last.get(k) for k in ("channels", "frames", "us_per_channel_frame", "typical",
                                             "worst_case_every_channel_in_a_digit")}
    acc = last.get("q24_accuracy", {})
    detect = [v["percent_correct"] for v in acc.values() if "percent_correct" in v]
    figures["q24_accuracy"] = acc
    figures["q24_conditions"] = len(detect)
    figures["q24_min_percent_correct"] = min(detect) if detect else None
    figures["q24_from"] = "this run" if mode != "quick" else "bench/results/inband_dtmf.json"
    print(f"  B5 {figures['us_per_channel_frame']} us per channel-frame; Q.24 worst condition "
          f"{figures['q24_min_percent_correct']}% over {len(detect)} conditions", flush=True)
    return {"targets": TARGETS, "figures": figures}
