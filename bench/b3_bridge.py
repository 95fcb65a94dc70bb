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

import bisect
import time
from collections import Counter
from pathlib import Path

import numpy as np

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
        cap = common.Capture(work / "a-leg.pcap", f"udp portrange {lo}-{hi}")  # both legs
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
    whole = rtp_probe.read_pcap(work / "a-leg.pcap")
    uas_leg = (whole.sport == uas.media_port) | (whole.dport == uas.media_port)
    p = whole.where(~uas_leg)
    in_range = lambda ports: (ports >= lo) & (ports <= hi)  # noqa: E731
    into, out = p.where(in_range(p.dport) & ~in_range(p.sport)), p.where(in_range(p.sport))
    in_window = lambda q: q.where((q.t >= w0) & (q.t <= w1))  # noqa: E731
    to_uas = in_window(whole.where(whole.dport == uas.media_port))
    from_uas = in_window(whole.where(whole.sport == uas.media_port))
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
             "timing_out": timing_out,
             "per_relay": per_relay(win_in, to_uas, from_uas, win_out, min_pk)}
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


def _pair_and_delay(into, out, max_s: float = 1.0) -> list:
    """Delays (ms) from packets into the server (by ``dport``) to the same payload leaving it
    (by ``sport``) on another port.  Every call plays the same payloads, so each out port is
    first paired with the in port whose latest earlier copy of its payloads it follows most
    often, then matched on that port only."""
    by_key: dict[int, list] = {}
    for t, port, k in zip(into.t.tolist(), into.dport.tolist(), into.key.tolist()):
        by_key.setdefault(k, []).append((t, port))
    for v in by_key.values():
        v.sort()
    votes: dict[int, Counter] = {}
    for t, port, k in zip(out.t.tolist(), out.sport.tolist(), out.key.tolist()):
        cands = by_key.get(k)
        if not cands:
            continue
        i = bisect.bisect_right(cands, (t, 1 << 30)) - 1
        if i >= 0 and t - cands[i][0] <= max_s:
            votes.setdefault(port, Counter())[cands[i][1]] += 1
    pair = {o: c.most_common(1)[0][0] for o, c in votes.items()}
    first: dict[tuple, float] = {}
    for t, port, k in zip(into.t.tolist(), into.dport.tolist(), into.key.tolist()):
        first.setdefault((port, k), t)
    delays = []
    for t, port, k in zip(out.t.tolist(), out.sport.tolist(), out.key.tolist()):
        t0 = first.get((pair.get(port), k))
        if t0 is not None and 0 <= t - t0 <= max_s:
            delays.append((t - t0) * 1000.0)
    return delays


def _stats(delays) -> dict:
    if not delays:
        return {"matched": 0}
    d = np.asarray(delays)
    return {"matched": int(d.size), "p50_ms": round(float(np.percentile(d, 50)), 3),
            "p99_ms": round(float(np.percentile(d, 99)), 3), "max_ms": round(float(d.max()), 3)}


def per_relay(caller_in, to_uas, from_uas, caller_out, min_pk: int) -> dict:
    """Each relay on its own: caller -> server -> uas and uas -> server -> caller, the delay
    through the server and the jitter of the same stream in and out."""
    forward, back = _pair_and_delay(caller_in, to_uas), _pair_and_delay(from_uas, caller_out)
    jit = lambda q, by: rtp_probe.analyse(q, min_packets=min_pk, by=by).get("jitter_ms", {}).get("p99")  # noqa: E731
    return {"caller_to_uas": _stats(forward), "uas_to_caller": _stats(back),
            "both": _stats(forward + back),
            "jitter_p99_ms": {"caller_in": jit(caller_in, "dport"), "to_uas_out": jit(to_uas, "sport"),
                              "uas_in": jit(from_uas, "dport"), "caller_out": jit(caller_out, "sport")}}


def echo_level(work: Path, calls: int, duration_s: float) -> dict:
    """The echo line (the bundled ``echo`` verb): the caller's packets straight back; the
    delay from each packet in to the same packet out, on the server's port."""
    work = work / f"echo-{calls}"
    work.mkdir(parents=True, exist_ok=True)
    xml = scenario(work, duration_s + 5)
    rate = max(20.0, calls / 10.0)
    ramp = calls / rate
    plans = common.prepare_dialplans(work / "server")  # start_server keeps this extra plan
    (plans / "echo-line.yaml").write_text(
        "routes:\n  - name: echo-line\n    flow: echo_line\n"
        "flows:\n  echo_line:\n    - answer\n    - echo: 600\n")
    server = common.start_server(work / "server", rtp_ports=calls * 4 + 100)
    try:
        lo, hi = server.rtp_range
        cap = common.Capture(work / "echo.pcap", f"udp portrange {lo}-{hi}")
        t0 = time.time()
        sipp = common.Sipp(work, server.sip, xml, tag="uac", service="echo-line", calls=calls,
                           rate=rate, limit=calls, duration_ms=duration_s * 1000,
                           timeout=duration_s + ramp + 90)
        w0, w1 = t0 + ramp + 2.0, max(t0 + duration_s - 0.5, t0 + ramp + 4.0)
        _sleep_until(w0)
        cpu = common.CpuWindow(server.pid).start()
        _sleep_until(w1)
        cpu_fig = cpu.stop()
        run = sipp.wait()
        cap.stop()
    finally:
        server.stop()
    p = rtp_probe.read_pcap(work / "echo.pcap")
    p = p.where((p.t >= w0) & (p.t <= w1))
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
