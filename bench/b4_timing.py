"""B4 timing under load: IVR calls at 80% of B2's maximum held for a long run (10 min in full
mode); send interval p99 / p99.9 / max and the drift of each stream's RTP clock against the
wall clock (capture timestamps) over the run.  Long runs capture a sample of the streams
(1 in 8, by port) to keep the capture small; every sampled stream spans the whole window."""
from __future__ import annotations

import json
from pathlib import Path

from . import common
from .b2_ivr import run_level

TARGETS = {"drift_ms": "<= 20 over the run", "load": "80% of B2's maximum"}


def run(work: Path, mode: str, context: dict) -> dict:
    quick = mode == "quick"
    b2_max = context.get("b2_max_calls")
    if not b2_max:
        try:
            b2_max = json.loads((common.RESULTS / "b2_ivr.json").read_text())["figures"]["concurrent_ivr_calls"]
        except (OSError, ValueError, KeyError):
            b2_max = 0
    calls = 20 if quick else max(10, int(0.8 * (b2_max or 100)))
    duration = float(context.get("b4_seconds") or (10.0 if quick else 600.0))
    level = run_level(work, calls, duration, sample_every=1 if quick else 8, tag="b4")
    t = level["timing"]
    print(f"  B4 {calls} calls for {duration:g} s: interval p99 {t.get('interval_ms', {}).get('p99')} "
          f"p99.9 {t.get('interval_ms', {}).get('p999')} max {t.get('interval_ms', {}).get('max')} ms, "
          f"drift max {t.get('drift_ms', {}).get('max_abs')} ms", flush=True)
    return {"targets": TARGETS, "figures": {
        "calls": calls, "b2_max_used": b2_max, "seconds": duration,
        "window_s": level["window_s"],
        "interval_ms": t.get("interval_ms"), "interval_dev_ms": t.get("interval_dev_ms"),
        "max_gap_ms": t.get("max_gap_ms"),
        "drift_ms_max_abs": t.get("drift_ms", {}).get("max_abs"),
        "drift_ms_mean": t.get("drift_ms", {}).get("mean"),
        "streams_measured": t.get("streams"),
        "core0_timer_floor": common.timer_floor(3.0 if quick else 10.0),
        "level": level}}
