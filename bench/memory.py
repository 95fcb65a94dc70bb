"""Memory: the server's resident memory per concurrent IVR call (B2's calls), and whether the
idle RSS stays flat over repeated waves of calls (a leak shows as a rising idle line)."""
from __future__ import annotations

import time
from pathlib import Path

from . import common
from .b2_ivr import DIGITS_AT_S, server_wait_prerender

TARGETS = {"rss_per_call_kb": "<= 30", "idle_growth": "flat over the run"}


def run(work: Path, mode: str, context: dict) -> dict:
    quick = mode == "quick"
    calls, waves, duration = (100, 2, 5.0) if quick else (1000, 6, 30.0)
    rate = max(50.0, calls / 10.0)
    server = common.start_server(work / "memory-server", rtp_ports=calls * 4 + 400)
    rows = []
    try:
        server_wait_prerender(server)
        time.sleep(0.5)
        idle0 = common.rss_bytes(server.pid)
        for wave in range(waves):
            sipp = common.Sipp(work, server.sip, common.SCENARIOS / "uac_ivr.xml", tag=f"mem-{wave}",
                               service="ivr", calls=calls, rate=rate, limit=calls,
                               duration_ms=duration * 1000 - DIGITS_AT_S * 1000,
                               timeout=duration + calls / rate + 60)
            time.sleep(calls / rate + DIGITS_AT_S + 1.0)
            peak = common.rss_bytes(server.pid)
            run_ = sipp.wait()
            time.sleep(1.5)
            idle = common.rss_bytes(server.pid)
            rows.append({"wave": wave + 1, "successful": run_.stat("SuccessfulCall(C)"),
                         "failed": run_.stat("FailedCall(C)"),
                         "rss_loaded_mb": round(peak / 2**20, 2), "rss_idle_after_mb": round(idle / 2**20, 2),
                         "rss_per_call_kb": round((peak - idle0) / 1024 / calls, 1)})
            print(f"  memory wave {wave + 1}: {calls} calls, {rows[-1]['rss_per_call_kb']} KB/call, "
                  f"idle after {rows[-1]['rss_idle_after_mb']} MB", flush=True)
    finally:
        server.stop()
    per_call = [r["rss_per_call_kb"] for r in rows]
    return {"targets": TARGETS, "figures": {
        "calls_per_wave": calls, "waves": waves, "call_seconds": duration,
        "rss_idle_start_mb": round(idle0 / 2**20, 2),
        "rss_per_call_kb": max(per_call) if per_call else None,
        "rss_per_call_kb_first_wave": per_call[0] if per_call else None,
        "idle_growth_first_to_last_wave_mb": round(rows[-1]["rss_idle_after_mb"] - rows[0]["rss_idle_after_mb"], 2)
        if len(rows) > 1 else None,
        "waves_detail": rows}}
