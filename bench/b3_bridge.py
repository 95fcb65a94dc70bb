"""B3 bridged relay: SIPp (uac) calls the server, whose plan dials a SIPp ``uas -rtp_echo``
and bridges the two legs.  The uac plays a 20 ms PCMU stream whose every packet is unique; the
server relays it to the uas, the uas echoes it, the server relays it back.  From the capture
of the caller-side leg: CPU microseconds per relayed packet, the round trip through both
relays (matched by payload), the jitter the relay adds, and the outgoing stream's timing.
The reference is the same call load answered directly by SIPp's uas on the server's core.

The capture holds both legs, so each relay is also measured on its own: a packet into the
server on one leg matched (by payload) with the same packet leaving on the other leg
(``per_relay``; the legs are paired by which of the server's ports the payloads cross), which
leaves the uas's echo turnaround and SIPp's own scheduling out; and the jitter of each
relayed stream going in against the same stream coming out.  The echo line (``echo``, the
bundled ``echo`` verb) is measured the same way: a packet in, the same packet back out.
"""
from __future__ import annotations

from pathlib import Path

from . import common, rtp_probe
from .b3_common import (calls_broken, finish, level_head, measured_calls, per_packet,
                        relay_figures, scenario, timing_broken)

TARGETS = {"cpu_us_per_relayed_packet": "<= 10", "bridged_calls": ">= 1000",
           "added_latency_per_relay_p99_ms": "<= 1", "echo_added_delay_p99_ms": "<= 20"}


def run_level(work: Path, pairs: int, duration_s: float) -> dict:
    work = work / f"b3-{pairs}"
    work.mkdir(parents=True, exist_ok=True)
    xml = scenario(work, duration_s + 5)
    uas = common.SippUas(work, common.DRIVER_CORE, "far-uas")
    server = common.start_server(work / "server", uas_port=uas.port, rtp_ports=pairs * 8 + 400)
    try:
        lo, hi = server.rtp_range
        cap = common.Capture(work / "a-leg.pcap", f"udp portrange {lo}-{hi}")  # both legs
        win = measured_calls(work, server.sip, xml, service="bridge", calls=pairs,
                             duration_s=duration_s, pids=[server.pid])
        cap_info = cap.stop()
    finally:
        server.stop()
        uas.stop()
    figures = relay_figures(rtp_probe.read_pcap(work / "a-leg.pcap"), uas.media_port, lo, hi,
                            win.w0, win.w1)
    cpu_fig = win.cpu[0]
    level = {**level_head(pairs, duration_s, win), "server_cpu": cpu_fig, **cap_info, **figures,
             "cpu_us_per_relayed_packet": per_packet(cpu_fig["cpu_s"],
                                                     figures["relayed_packets_in_window"])}
    broken = calls_broken(level) + timing_broken(level["timing_out"])
    if (cpu_fig["cpu_percent"] or 0) >= 80.0:
        broken.append("server cpu")
    if not level["round_trip_through_both_relays"].get("matched"):
        broken.append("no relayed packet came back")
    return finish(level, broken, win.run)


def echo_level(work: Path, calls: int, duration_s: float) -> dict:
    """The echo line (the bundled ``echo`` verb): the caller's packets straight back; the
    delay from each packet in to the same packet out, on the server's port."""
    work = work / f"echo-{calls}"
    work.mkdir(parents=True, exist_ok=True)
    xml = scenario(work, duration_s + 5)
    plans = common.prepare_dialplans(work / "server")  # start_server keeps this extra plan
    (plans / "echo-line.yaml").write_text(
        "routes:\n  - name: echo-line\n    flow: echo_line\n"
        "flows:\n  echo_line:\n    - answer\n    - echo: 600\n")
    server = common.start_server(work / "server", rtp_ports=calls * 4 + 100)
    try:
        lo, hi = server.rtp_range
        cap = common.Capture(work / "echo.pcap", f"udp portrange {lo}-{hi}")
        win = measured_calls(work, server.sip, xml, service="echo-line", calls=calls,
                             duration_s=duration_s, pids=[server.pid])
        cap.stop()
    finally:
        server.stop()
    run, (cpu_fig,) = win.run, win.cpu
    p = rtp_probe.read_pcap(work / "echo.pcap")
    p = p.where((p.t >= win.w0) & (p.t <= win.w1))
    in_range = lambda ports: (ports >= lo) & (ports <= hi)  # noqa: E731
    into, out = p.where(in_range(p.dport)), p.where(in_range(p.sport))
    delay = rtp_probe.relay_latency(into, out)
    return {"calls": calls, "successful": run.stat("SuccessfulCall(C)"), "server_cpu": cpu_fig,
            "echo_delay": delay,
            "cpu_us_per_echoed_packet": round(cpu_fig["cpu_s"] * 1e6 / len(into), 2) if len(into) else None}


def reference(work: Path, calls: int, duration_s: float) -> dict:
    """SIPp uas -rtp_echo on the server's core, the same uac load: CPU per echoed packet."""
    work = work / f"b3-ref-{calls}"
    work.mkdir(parents=True, exist_ok=True)
    xml = scenario(work, duration_s + 5)
    uas = common.SippUas(work, common.SERVER_CORE, "ref-uas")
    try:
        cap = common.Capture(work / "echo.pcap", f"udp dst port {uas.media_port}")
        win = measured_calls(work, uas.target, xml, service="echo", calls=calls,
                             duration_s=duration_s, pids=[uas.pid])
        cap.stop()
    finally:
        uas.stop()
    run, (cpu_fig,) = win.run, win.cpu
    p = rtp_probe.read_pcap(work / "echo.pcap")
    echoed = int(((p.t >= win.w0) & (p.t <= win.w1)).sum())
    return {"calls": calls, "successful": run.stat("SuccessfulCall(C)"), "uas_cpu": cpu_fig,
            "echoed_packets_in_window": echoed,
            "cpu_us_per_echoed_packet": round(cpu_fig["cpu_s"] * 1e6 / echoed, 3) if echoed else None,
            "cpu_percent_per_call": round((cpu_fig["cpu_percent"] or 0) / calls, 4)}


def run(work: Path, mode: str, context: dict) -> dict:
    quick = mode == "quick"
    tries = [20] if quick else [100, 250, 500, 750, 1000]
    duration = context.get("seconds") or (8.0 if quick else 30.0)
    levels, best = [], 0
    for pairs in tries:
        level = run_level(work, pairs, duration)
        levels.append(level)
        rel = level["per_relay"]["both"]
        print(f"  B3 {pairs:5d} pairs: per relay p50/p99 {rel.get('p50_ms')}/{rel.get('p99_ms')} ms, "
              f"jitter {level['per_relay']['jitter_p99_ms']}", flush=True)
        print(f"  B3 {pairs:5d} pairs: {level['cpu_us_per_relayed_packet']} us/packet, cpu "
              f"{level['server_cpu']['cpu_percent']}%, rtt p99 "
              f"{level['round_trip_through_both_relays'].get('p99_ms')} ms, out dev p99 "
              f"{level['timing_out'].get('interval_dev_ms', {}).get('p99')} ms -> "
              f"{'ok' if level['passed'] else level['verdict']}", flush=True)
        if not level["passed"]:
            break
        best = pairs
    held = next((l for l in levels if l["pairs"] == best), levels[-1])
    ref = reference(work, held["pairs"], 6.0 if quick else 20.0)
    context["reference_cpu_percent_per_call"] = ref["cpu_percent_per_call"]
    ours, theirs = held["cpu_us_per_relayed_packet"], ref["cpu_us_per_echoed_packet"]
    print(f"  B3 reference sipp uas -rtp_echo at {ref['calls']} calls: {theirs} us/packet", flush=True)
    echo = echo_level(work, 20 if quick else 100, 6.0 if quick else duration)
    print(f"  B3 echo line at {echo['calls']} calls: delay {echo['echo_delay']}", flush=True)
    return {"targets": TARGETS, "figures": {
        "bridged_calls": best,
        "cpu_us_per_relayed_packet": ours,
        "added_latency_per_relay_p99_ms": held["added_latency_per_relay_p99_ms"],
        "measured_per_relay_p99_ms": held["per_relay"]["both"].get("p99_ms"),
        "echo_added_delay_p99_ms": echo["echo_delay"].get("p99_ms"),
        "jitter_into_server_p99_ms": held["jitter_into_server_p99_ms"],
        "jitter_out_of_server_p99_ms": held["jitter_out_of_server_p99_ms"],
        "reference_sipp_uas_cpu_us_per_echoed_packet": theirs,
        "cost_ratio_to_reference": round(ours / theirs, 1) if ours and theirs else None,
        "first_failure": levels[-1]["verdict"] if not levels[-1]["passed"] else None,
        "levels": levels, "reference": ref, "echo": echo}}
