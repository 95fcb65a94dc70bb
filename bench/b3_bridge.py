"""B3 bridged relay: SIPp (uac) calls the server, whose plan dials a SIPp ``uas -rtp_echo``
and bridges the two legs.  The uac plays a 20 ms PCMU stream whose every packet is unique; the
server relays it to the uas, the uas echoes it, the server relays it back.  From the capture
of the caller-side leg: CPU microseconds per relayed packet, the round trip through both
relays (matched by payload), the jitter the relay adds, and the outgoing stream's timing.
The reference is the same call load answered directly by SIPp's uas on the server's core."""
from __future__ import annotations

import time
from pathlib import Path

from . import common, rtp_probe
from .b2_ivr import _sleep_until

TARGETS = {"cpu_us_per_relayed_packet": "<= 10", "bridged_calls": ">= 500"}


def scenario(work: Path, seconds: float) -> Path:
    pcap = rtp_probe.write_relay_pcap(work / "relay.pcap", seconds)
    xml = (common.SCENARIOS / "uac_relay.xml").read_text().replace("RELAY_PCAP", str(pcap))
    path = work / "uac_relay.xml"
    path.write_text(xml)
    return path


def run_level(work: Path, pairs: int, duration_s: float) -> dict:
    work = work / f"b3-{pairs}"
    work.mkdir(parents=True, exist_ok=True)
    xml = scenario(work, duration_s + 5)
    rate = max(20.0, pairs / 10.0)
    ramp = pairs / rate
    uas = common.SippUas(work, common.DRIVER_CORE, "far-uas")
    server = common.start_server(work / "server", uas_port=uas.port, rtp_ports=pairs * 8 + 400)
    try:
        lo, hi = server.rtp_range
        cap = common.Capture(work / "a-leg.pcap",
                             f"udp portrange {lo}-{hi} and not udp port {uas.media_port}")
        t0 = time.time()
        sipp = common.Sipp(work, server.sip, xml, tag="uac", service="bridge", calls=pairs,
                           rate=rate, limit=pairs, duration_ms=duration_s * 1000,
                           timeout=duration_s + ramp + 90)
        w0, w1 = t0 + ramp + 2.0, t0 + duration_s - 0.5
        w1 = max(w1, w0 + 2.0)
        _sleep_until(w0)
        cpu = common.CpuWindow(server.pid).start()
        _sleep_until(w1)
        cpu_fig = cpu.stop()
        run = sipp.wait()
        cap_info = cap.stop()
    finally:
        server.stop()
        uas.stop()
    p = rtp_probe.read_pcap(work / "a-leg.pcap")
    in_range = lambda ports: (ports >= lo) & (ports <= hi)  # noqa: E731
    into, out = p.where(in_range(p.dport) & ~in_range(p.sport)), p.where(in_range(p.sport))
    win_in = into.where((into.t >= w0) & (into.t <= w1))
    win_out = out.where((out.t >= w0) & (out.t <= w1))
    relayed = 2 * len(win_in)  # each caller packet is relayed out, and its echo relayed back
    rtt = rtp_probe.relay_latency(into, out)
    min_pk = max(10, int((w1 - w0) / 0.02 * 0.5))
    timing_out = rtp_probe.analyse(win_out, min_packets=min_pk)
    timing_in = rtp_probe.analyse(win_in, min_packets=min_pk, by="dport")
    level = {"pairs": pairs, "duration_s": duration_s, "window_s": round(w1 - w0, 1),
             "successful": run.stat("SuccessfulCall(C)"), "failed": run.stat("FailedCall(C)"),
             "sipp_rc": run.returncode, "server_cpu": cpu_fig, **cap_info,
             "relayed_packets_in_window": relayed,
             "cpu_us_per_relayed_packet": round(cpu_fig["cpu_s"] * 1e6 / relayed, 2) if relayed else None,
             "round_trip_through_both_relays": rtt,
             "added_latency_per_relay_p99_ms": round(rtt["p99_ms"] / 2, 2) if rtt.get("matched") else None,
             "jitter_into_server_p99_ms": timing_in.get("jitter_ms", {}).get("p99"),
             "jitter_out_of_server_p99_ms": timing_out.get("jitter_ms", {}).get("p99"),
             "timing_out": timing_out}
    t = timing_out
    broken = []
    if level["failed"] or level["successful"] < pairs:
        broken.append("calls")
    if not t.get("streams"):
        broken.append("no RTP captured")
    else:
        if t["interval_dev_ms"]["p99"] > 2.0:
            broken.append("interval p99")
        if t["max_gap_ms"] > 40.0:
            broken.append("max gap")
        if t["streams_with_seq_errors"]:
            broken.append("sequence errors")
    if (cpu_fig["cpu_percent"] or 0) >= 80.0:
        broken.append("server cpu")
    if not rtt.get("matched"):
        broken.append("no relayed packet came back")
    level["verdict"], level["passed"] = broken, not broken
    if run.errors and broken:
        level["sipp_errors_tail"] = run.errors[-600:]
    return level


def reference(work: Path, calls: int, duration_s: float) -> dict:
    """SIPp uas -rtp_echo on the server's core, the same uac load: CPU per echoed packet."""
    work = work / f"b3-ref-{calls}"
    work.mkdir(parents=True, exist_ok=True)
    xml = scenario(work, duration_s + 5)
    rate = max(20.0, calls / 10.0)
    ramp = calls / rate
    uas = common.SippUas(work, common.SERVER_CORE, "ref-uas")
    try:
        cap = common.Capture(work / "echo.pcap", f"udp dst port {uas.media_port}")
        t0 = time.time()
        sipp = common.Sipp(work, uas.target, xml, tag="uac", service="echo", calls=calls, rate=rate,
                           limit=calls, duration_ms=duration_s * 1000, timeout=duration_s + ramp + 90)
        w0, w1 = t0 + ramp + 2.0, t0 + duration_s - 0.5
        w1 = max(w1, w0 + 2.0)
        _sleep_until(w0)
        cpu = common.CpuWindow(uas.pid).start()
        _sleep_until(w1)
        cpu_fig = cpu.stop()
        run = sipp.wait()
        cap.stop()
    finally:
        uas.stop()
    p = rtp_probe.read_pcap(work / "echo.pcap")
    echoed = int(((p.t >= w0) & (p.t <= w1)).sum())
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
    return {"targets": TARGETS, "figures": {
        "bridged_calls": best,
        "cpu_us_per_relayed_packet": ours,
        "added_latency_per_relay_p99_ms": held["added_latency_per_relay_p99_ms"],
        "jitter_into_server_p99_ms": held["jitter_into_server_p99_ms"],
        "jitter_out_of_server_p99_ms": held["jitter_out_of_server_p99_ms"],
        "reference_sipp_uas_cpu_us_per_echoed_packet": theirs,
        "cost_ratio_to_reference": round(ours / theirs, 1) if ours and theirs else None,
        "first_failure": levels[-1]["verdict"] if not levels[-1]["passed"] else None,
        "levels": levels, "reference": ref}}
