"""B2 IVR concurrency: calls hear a TTS menu, send RFC 4733 digits 1 5 9 and then listen to a
looping announcement.  Concurrency rises until a criterion breaks; the figure is the highest
level that met all of them (see CRITERIA).  ``run_level`` is shared with B4 and memory."""
from __future__ import annotations

import time
from pathlib import Path

from . import common, rtp_probe

TARGETS = {"concurrent_ivr_calls": ">= 2000"}
CRITERIA = {"digits_recognised_percent": "== 100", "interval_dev_p99_ms": "<= 2",
            "max_gap_ms": "<= 40", "streams_with_seq_errors": "== 0", "server_cpu_percent": "< 80"}
DIGITS_AT_S = 1.8  # the scenario's digits end this long after the 200 (0.8 + 0.5 + 0.5 s)


def run_level(work: Path, calls: int, duration_s: float, *, rate: float | None = None,
              sample_every: int = 1, tag: str = "b2") -> dict:
    """``calls`` concurrent IVR calls of ``duration_s``; measured over the window when all are
    up and past their digits.  ``sample_every`` > 1 captures only RTP ports divisible by
    2 * sample_every (a sample of the streams, for long runs)."""
    rate = rate or max(25.0, calls / 10.0)
    ramp = calls / rate
    server = common.start_server(work / f"server-{tag}-{calls}", rtp_ports=max(2000, calls * 4 + 400))
    try:
        server_wait_prerender(server)
        rss0 = common.rss_bytes(server.pid)
        lo, hi = server.rtp_range
        bpf = f"udp src portrange {lo}-{hi}"
        if sample_every > 1:
            bpf += f" and (udp[0:2] % {2 * sample_every} == 0)"
        cap = common.Capture(server.work / "rtp.pcap", bpf)
        t0 = time.time()
        sipp = common.Sipp(work, server.sip, common.SCENARIOS / "uac_ivr.xml", tag=f"{tag}-{calls}",
                           service="ivr", calls=calls, rate=rate, limit=calls,
                           duration_ms=max(100, duration_s * 1000 - DIGITS_AT_S * 1000),
                           timeout=duration_s + ramp + 90)
        w0 = t0 + ramp + DIGITS_AT_S + 1.0
        w1 = t0 + duration_s - 0.5
        if w1 - w0 < 2.0:
            w1 = w0 + 2.0
        _sleep_until(w0)
        cpu = common.CpuWindow(server.pid).start()
        _sleep_until((w0 + w1) / 2)
        rss_mid = common.rss_bytes(server.pid)
        _sleep_until(w1)
        cpu_fig = cpu.stop()
        run = sipp.wait()
        time.sleep(0.5)
        cap_info = cap.stop()
        ok, bad = server.count("bench-digits ok"), server.count("bench-digits bad")
        rss_end = common.rss_bytes(server.pid)
    finally:
        server.stop()
    packets = rtp_probe.read_pcap(server.work / "rtp.pcap")
    window = packets.where((packets.t >= w0) & (packets.t <= w1))
    timing = rtp_probe.analyse(window, min_packets=max(10, int((w1 - w0) / 0.02 * 0.5)))
    level = {
        "calls": calls, "duration_s": duration_s, "ramp_cps": rate,
        "window_s": round(w1 - w0, 1), "successful": run.stat("SuccessfulCall(C)"),
        "failed": run.stat("FailedCall(C)"), "sipp_rc": run.returncode,
        "digits_ok": ok, "digits_wrong": bad,
        "digits_recognised_percent": round(100.0 * ok / calls, 2),
        "server_cpu": cpu_fig, "timing": timing, **cap_info,
        "rss_idle_mb": round(rss0 / 2**20, 1), "rss_loaded_mb": round(rss_mid / 2**20, 1),
        "rss_after_mb": round(rss_end / 2**20, 1),
        "rss_per_call_kb": round((rss_mid - rss0) / 1024 / calls, 1),
        "sampled_streams": f"1 in {sample_every}" if sample_every > 1 else "all",
    }
    if run.errors and (level["failed"] or run.returncode):
        level["sipp_errors_tail"] = run.errors[-600:]
    level["verdict"] = verdict(level)
    level["passed"] = not level["verdict"]
    return level


def server_wait_prerender(server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and "pre-rendered" not in server.log():
        time.sleep(0.05)


def _sleep_until(when: float) -> None:
    delay = when - time.time()
    if delay > 0:
        time.sleep(delay)


def verdict(level: dict) -> list[str]:
    """The criteria this level broke (empty: it passed)."""
    broken = []
    t = level["timing"]
    if level["digits_recognised_percent"] < 100 or level["failed"]:
        broken.append("digits/calls")
    if not t.get("streams"):
        return broken + ["no RTP captured"]
    if t["streams"] < level["calls"] * 0.98 and level["sampled_streams"] == "all":
        broken.append(f"only {t['streams']} streams in the window")
    if t["interval_dev_ms"]["p99"] > 2.0:
        broken.append("interval p99")
    if t["max_gap_ms"] > 40.0:
        broken.append("max gap")
    if t["streams_with_seq_errors"]:
        broken.append("sequence errors")
    if (level["server_cpu"]["cpu_percent"] or 0) >= 80.0:
        broken.append("server cpu")
    return broken


def summary(level: dict) -> str:
    t = level["timing"]
    dev = t.get("interval_dev_ms", {})
    return (f"{level['calls']:5d} calls: digits {level['digits_recognised_percent']}% "
            f"dev p99 {dev.get('p99')} ms max gap {t.get('max_gap_ms')} ms "
            f"seq-err streams {t.get('streams_with_seq_errors')} cpu {level['server_cpu']['cpu_percent']}% "
            f"rss/call {level['rss_per_call_kb']} KB -> {'ok' if level['passed'] else level['verdict']}")


def run(work: Path, mode: str, context: dict) -> dict:
    quick = mode == "quick"
    levels_to_try = [50] if quick else [200, 400, 600, 800, 1000, 1200, 1500, 2000]
    duration = context.get("seconds") or (9.0 if quick else 30.0)
    levels, best = [], 0
    for n in levels_to_try:
        level = run_level(work, n, duration)
        levels.append(level)
        print("  B2 " + summary(level), flush=True)
        if not level["passed"]:
            break
        best = n
    context["b2_max_calls"] = best
    held = next((l for l in levels if l["calls"] == best), levels[-1])
    ref = context.get("reference_cpu_percent_per_call")
    per_call = (held["server_cpu"]["cpu_percent"] or 0) / held["calls"]
    return {"targets": {**TARGETS, "criteria": CRITERIA}, "figures": {
        "concurrent_ivr_calls": best,
        "at_max": {k: held[k] for k in ("calls", "server_cpu", "digits_recognised_percent",
                                         "rss_per_call_kb")} | {"timing": held["timing"]},
        "server_cpu_percent_per_call": round(per_call, 4),
        "reference_sipp_uas_cpu_percent_per_call": ref,
        "cost_ratio_to_reference": round(per_call / ref, 1) if ref else None,
        "first_failure": levels[-1]["verdict"] if not levels[-1]["passed"] else None,
        "core0_timer_floor": common.timer_floor(3.0 if quick else 10.0),
        "levels": levels}}
