"""B8 a farm behind Kamailio (#18): call setup rate through Kamailio with 1 and 2 ``ivr serve``
nodes on one throwaway PostgreSQL (scripts/farm.py, as ``scripts/cluster up``), at stepped
rates.  A step holds when every call succeeded and the INVITE-to-200 p99 is under 100 ms; the
figure is the highest step held.  Kamailio's cost per call is its CPU time (every Kamailio
process, from /proc) over the calls of the steps.

Cores (a 2-core machine): with 1 node, the node on core 0 and Kamailio and SIPp on core 1;
with 2 nodes, node1 on core 0 and node2 on core 1, and Kamailio and SIPp (the driver) on
core 1 with node2: so the 2-node figure is a lower bound of what two dedicated cores give.
"""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path

from . import common
from .b1_setup import _elapsed

TARGETS = {"setup_rate_cps_2_nodes": "> 1 node's", "invite_to_200_p99_ms": "< 100 at the held step",
           "failed_calls": "0"}
P99_LIMIT_MS = 100.0
SCENARIO = common.ROOT / "tests" / "interop" / "scenarios" / "uac_via_proxy.xml"


def _farm():
    spec = importlib.util.spec_from_file_location("farm", common.ROOT / "scripts" / "farm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kamailio_cpu(pid: int) -> float:
    """CPU seconds of every process in Kamailio's process group (scripts/farm.py starts it
    in a session of its own: the main process and every worker it forked)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[2] == str(pid):    # pgrp
            total += (int(fields[11]) + int(fields[12])) / common.CLK_TCK
    return total


def run_step(work: Path, target: str, rate: int, seconds: float, tag: str, kam_pid: int,
             node_pids: list[int]) -> dict:
    calls = max(1, int(rate * seconds))
    k0, n0, t0 = kamailio_cpu(kam_pid), [common.cpu_seconds(p) for p in node_pids], time.monotonic()
    run = common.sipp(work, target, SCENARIO, tag=tag, service="setup", calls=calls, rate=rate,
                      timeout=seconds * 3 + 30)
    wall = time.monotonic() - t0
    kam_cpu = kamailio_cpu(kam_pid) - k0
    ok = run.stat("SuccessfulCall(C)")
    step = {"rate_cps": rate, "seconds": seconds, "calls": calls, "successful": ok,
            "failed": run.stat("FailedCall(C)"), "sipp_rc": run.returncode,
            "achieved_cps": round(ok / max(_elapsed(run.stats) or seconds, 1e-3), 1),
            "invite_to_200_ms": {"p50": common.percentile(run.rtt_ms, 50),
                                 "p99": common.percentile(run.rtt_ms, 99),
                                 "max": max(run.rtt_ms) if run.rtt_ms else None},
            "kamailio_cpu_s": round(kam_cpu, 3),
            "kamailio_cpu_percent": round(100 * kam_cpu / wall, 1) if wall > 0 else None,
            "kamailio_cpu_us_per_call": round(1e6 * kam_cpu / ok, 1) if ok else None,
            "node_cpu_percent": [round(100 * (common.cpu_seconds(p) - c) / wall, 1)
                                 for p, c in zip(node_pids, n0)]}
    p99 = step["invite_to_200_ms"]["p99"]
    step["held"] = bool(step["failed"] == 0 and ok == calls and p99 is not None
                        and p99 < P99_LIMIT_MS)
    if not step["held"] and run.errors:
        step["sipp_errors_tail"] = run.errors[-600:]
    return step


def farm_steps(work: Path, nodes: int, rates, seconds: float) -> dict:
    farm = _farm()
    run_dir = work / f"farm-{nodes}"
    cores = [common.SERVER_CORE, common.DRIVER_CORE][:nodes]
    state = farm.up(run_dir, nodes, dialplans=common.prepare_dialplans(work / f"plans-{nodes}"),
                    node_args=["--speech-engine", "off", "--drain-timeout", "5"],
                    pike_density=1_000_000,   # SIPp is one source sending everything
                    node_cores=cores if common.pinned("0", []) else None,
                    kamailio_core=common.DRIVER_CORE if common.pinned("0", []) else None)
    try:
        kam = state["kamailio"]
        target = f"{kam['address']}:{kam['sip_port']}"
        pids = [n["pid"] for n in state["nodes"]]
        steps, best = [], 0
        for rate in rates:
            step = run_step(work, target, rate, seconds, f"farm{nodes}-{rate}", kam["pid"], pids)
            steps.append(step)
            print(f"  B8 {nodes} node(s) {rate:4d} cps: ok {step['successful']}/{step['calls']} "
                  f"p99 {step['invite_to_200_ms']['p99']} ms, kamailio "
                  f"{step['kamailio_cpu_us_per_call']} us/call, nodes "
                  f"{step['node_cpu_percent']}% -> {'held' if step['held'] else 'FAILED'}",
                  flush=True)
            if not step["held"]:
                break
            best = rate
            time.sleep(1.0)
        return {"steps": steps, "setup_rate_cps": best, "cores": cores}
    finally:
        farm.down(run_dir)


def run(work: Path, mode: str, context: dict) -> dict:
    quick = mode == "quick"
    common.require("kamailio")
    rates = context.get("b8_farm_rates") or ([10, 20] if quick else
                                             [25, 50, 75, 100, 125, 150, 200, 250, 300])
    seconds = context.get("seconds") or (3.0 if quick else 15.0)
    one = farm_steps(work, 1, rates, seconds)
    two = farm_steps(work, 2, rates, seconds)
    every = [s for r in (one, two) for s in r["steps"] if s["successful"]]
    kam_cpu = sum(s["kamailio_cpu_s"] for s in every)
    kam_calls = sum(s["successful"] for s in every)

    def at_held(result: dict, key):
        held = [s for s in result["steps"] if s["held"]]
        return key(held[-1]) if held else None
    figures = {
        "setup_rate_cps_1_node": one["setup_rate_cps"],
        "setup_rate_cps_2_nodes": two["setup_rate_cps"],
        "invite_to_200_p99_ms_1_node": at_held(one, lambda s: s["invite_to_200_ms"]["p99"]),
        "invite_to_200_p99_ms_2_nodes": at_held(two, lambda s: s["invite_to_200_ms"]["p99"]),
        "failed_calls": sum(s["failed"] for r in (one, two) for s in r["steps"] if s["held"]),
        "kamailio_cpu_us_per_call": round(1e6 * kam_cpu / kam_calls, 1) if kam_calls else None,
        "kamailio_cpu_percent_at_held_2_nodes": at_held(two, lambda s: s["kamailio_cpu_percent"]),
        "one_node": one, "two_nodes": two, "rates": rates, "seconds_per_step": seconds,
    }
    return {"figures": figures, "targets": TARGETS}
