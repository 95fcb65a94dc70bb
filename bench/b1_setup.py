"""B1 call setup rate: INVITE, 200, ACK, BYE through a plan that answers (the caller hangs up at
once), at stepped rates.  A step holds when every call succeeded and the INVITE-to-200 p99 is
under 100 ms; the figure is the highest step held.  The same steps against SIPp's own ``uas``
on the server's core give the harness's ceiling."""
from __future__ import annotations

import time
from pathlib import Path

from . import common

TARGETS = {"setup_rate_cps": ">= 1000", "invite_to_200_p99_ms": "< 100 at the held step",
           "failed_calls": "0"}
P99_LIMIT_MS = 100.0


def run_step(work: Path, target: str, rate: int, seconds: float, tag: str, pid: int | None) -> dict:
    calls = max(1, int(rate * seconds))
    cpu = common.CpuWindow(pid).start() if pid else None
    run = common.sipp(work, target, common.SCENARIOS / "uac_setup.xml", tag=tag, service="setup",
                      calls=calls, rate=rate, timeout=seconds * 3 + 30)
    step = {"rate_cps": rate, "seconds": seconds, "calls": calls,
            "successful": run.stat("SuccessfulCall(C)"), "failed": run.stat("FailedCall(C)"),
            "sipp_rc": run.returncode,
            "achieved_cps": round(run.stat("SuccessfulCall(C)") / max(
                _elapsed(run.stats) or seconds, 1e-3), 1),
            "invite_to_200_ms": {"p50": common.percentile(run.rtt_ms, 50),
                                 "p99": common.percentile(run.rtt_ms, 99),
                                 "max": max(run.rtt_ms) if run.rtt_ms else None}}
    if cpu:
        step["server_cpu"] = cpu.stop()
    p99 = step["invite_to_200_ms"]["p99"]
    step["held"] = bool(step["failed"] == 0 and step["successful"] == calls
                        and p99 is not None and p99 < P99_LIMIT_MS)
    if not step["held"] and run.errors:
        step["sipp_errors_tail"] = run.errors[-600:]
    return step


def _elapsed(stats: dict) -> float | None:
    """SIPp's ElapsedTime(C) "HH:MM:SS:mmm..." in seconds."""
    text = stats.get("ElapsedTime(C)", "")
    try:
        h, m, s = text.split(":")[:3]
        ms = text.split(":")[3] if text.count(":") >= 3 else "0"
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms[:3]) / 1000
    except (ValueError, IndexError):
        return None


def stepped(work: Path, target: str, rates, seconds: float, tag: str, pid: int | None,
            settle: float) -> tuple[list, int]:
    steps, best = [], 0
    for rate in rates:
        step = run_step(work, target, rate, seconds, f"{tag}-{rate}", pid)
        steps.append(step)
        print(f"  B1 {tag:>9} {rate:5d} cps: ok {step['successful']}/{step['calls']} "
              f"p99 {step['invite_to_200_ms']['p99']} ms cpu {step.get('server_cpu', {}).get('cpu_percent')}%"
              f" -> {'held' if step['held'] else 'FAILED'}", flush=True)
        if not step["held"]:
            break
        best = rate
        time.sleep(settle)
    return steps, best


def run(work: Path, mode: str, context: dict) -> dict:
    quick = mode == "quick"
    rates = [50, 100] if quick else [100, 200, 300, 400, 500, 600, 800, 1000, 1200]
    ref_rates = rates[-1:] if quick else rates + [1500, 2000, 3000, 4000]
    seconds = context.get("seconds") or (4.0 if quick else 30.0)
    server = common.start_server(work / "server")
    try:
        steps, best = stepped(work, server.sip, rates, seconds, "ivr", server.pid, 1.0)
        server_log_lines = server.log().count("\n")
    finally:
        server.stop()
    uas = common.SippUas(work, common.SERVER_CORE, "b1-ref-uas")
    try:
        ref_steps, ref_best = stepped(work, uas.target, ref_rates, seconds, "sipp-uas", uas.pid, 0.5)
    finally:
        uas.stop()
    held = next((s for s in steps if s["rate_cps"] == best), None)
    return {"targets": TARGETS, "figures": {
        "setup_rate_cps": best,
        "invite_to_200_p99_ms_at_held": held["invite_to_200_ms"]["p99"] if held else None,
        "server_cpu_percent_at_held": held.get("server_cpu", {}).get("cpu_percent") if held else None,
        "reference_sipp_uas_cps": ref_best,
        "ratio_to_reference": round(best / ref_best, 3) if ref_best else None,
        "reference_is_lower_bound": bool(ref_steps and ref_steps[-1]["held"]),
        "step_seconds": seconds, "steps": steps, "reference_steps": ref_steps,
        "server_log_lines": server_log_lines}}
