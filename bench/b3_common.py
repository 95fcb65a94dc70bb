"""What B3 (b3_bridge.py), B3S (b3_srtp.py) and B3R (b3_rtpengine.py) share: the caller's
scenario, a far-end SIPp answering with a scenario of its own, one measured window of bridged
calls (the CPU of the processes under test over it), the figures of a relay read from the
capture (each relay on its own, matched by payload), and a level's verdict.
"""
from __future__ import annotations

import bisect
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import common, rtp_probe
from .b2_ivr import _sleep_until


# --------------------------------------------------------------------------- the calls

def caller_xml(template: str, pcap: Path) -> str:
    """SIPp's caller scenario ``template`` (in bench/scenarios) playing ``pcap``."""
    return (common.SCENARIOS / template).read_text().replace("RELAY_PCAP", str(pcap))


def scenario(work: Path, seconds: float, template: str = "uac_relay.xml") -> Path:
    """The caller's scenario playing a fresh ``relay.pcap`` (every payload unique)."""
    pcap = rtp_probe.write_relay_pcap(work / "relay.pcap", seconds)
    path = work / template
    path.write_text(caller_xml(template, pcap))
    return path


class ScenarioUas(common.SippUas):
    """SIPp ``-rtp_echo`` on ``core`` answering with ``scenario`` (in bench/scenarios) instead
    of the built-in uas: B3S's (the server's own SRTP key) and B3R's (takes a re-INVITE)."""

    def __init__(self, work: Path, core: str, tag: str, scenario: str) -> None:  # noqa: D107
        self.work = work / f"sipp-{tag}"
        self.work.mkdir(parents=True, exist_ok=True)
        self.port = common.free_port()
        self.media_port = common.free_range(4, 20000, 29000)[0]
        cmd = common.pinned(core, [
            common.require("sipp"), "-sf", str(common.SCENARIOS / scenario),
            "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(self.port),
            "-mp", str(self.media_port), "-rtp_echo", "-nostdin", "-max_socket", "4096",
            "-trace_stat", "-stf", str(self.work / "stat.csv"), "-fd", "1",
            "-trace_err", "-error_file", str(self.work / "errors.log")])
        self.out = open(self.work / "output.txt", "wb")
        self.proc = subprocess.Popen(cmd, cwd=self.work, stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        time.sleep(0.3)
        if self.proc.poll() is not None:
            raise common.BenchError(f"sipp uas exited: {(self.work / 'output.txt').read_text()[-1500:]}")


@dataclass
class Window:
    """One measured run: SIPp's outcome, the CPU figures of each process (in the order
    given), the window (``w0``..``w1``, epoch seconds) and what ``before`` returned."""
    run: common.SippRun
    cpu: list
    w0: float
    w1: float
    before: object = None


def measured_calls(work: Path, target: str, xml: Path, *, service: str, calls: int,
                   duration_s: float, pids: list[int], before=None) -> Window:
    """SIPp's caller places ``calls`` calls to ``service`` at ``target`` (20 calls/s or
    faster, so the ramp takes at most 10 s); the window opens 2 s after the last call is
    placed and closes half a second before the first ends (at least 2 s).  ``before()`` is
    called as the window opens, before the CPU of ``pids`` is measured over it."""
    rate = max(20.0, calls / 10.0)
    ramp = calls / rate
    t0 = time.time()
    sipp = common.Sipp(work, target, xml, tag="uac", service=service, calls=calls, rate=rate,
                       limit=calls, duration_ms=duration_s * 1000,
                       timeout=duration_s + ramp + 90)
    w0, w1 = t0 + ramp + 2.0, max(t0 + duration_s - 0.5, t0 + ramp + 4.0)
    _sleep_until(w0)
    asked = before() if before is not None else None
    windows = [common.CpuWindow(pid).start() for pid in pids]
    _sleep_until(w1)
    cpu = [w.stop() for w in windows]
    return Window(sipp.wait(), cpu, w0, w1, asked)


# --------------------------------------------------------------------------- the capture

def relay_figures(whole, uas_media_port: int, lo: int, hi: int, w0: float, w1: float) -> dict:
    """B3's figures for the relay on ports ``lo``..``hi`` from the capture ``whole`` (both
    legs: the caller's, and the far end's on ``uas_media_port``): packets relayed in the
    window, the round trip through both relays, the jitter into and out of the relay, the
    outgoing streams' timing and each relay on its own (``per_relay``)."""
    in_range = lambda ports: (ports >= lo) & (ports <= hi)  # noqa: E731
    in_window = lambda q: q.where((q.t >= w0) & (q.t <= w1))  # noqa: E731
    uas_leg = (whole.sport == uas_media_port) | (whole.dport == uas_media_port)
    p = whole.where(~uas_leg)
    into, out = p.where(in_range(p.dport) & ~in_range(p.sport)), p.where(in_range(p.sport))
    to_uas = in_window(whole.where((whole.dport == uas_media_port) & in_range(whole.sport)))
    from_uas = in_window(whole.where((whole.sport == uas_media_port) & in_range(whole.dport)))
    win_in, win_out = in_window(into), in_window(out)
    min_pk = max(10, int((w1 - w0) / 0.02 * 0.5))
    timing_out = rtp_probe.analyse(win_out, min_packets=min_pk)
    timing_in = rtp_probe.analyse(win_in, min_packets=min_pk, by="dport")
    rtt = rtp_probe.relay_latency(into, out)
    return {"relayed_packets_in_window": 2 * len(win_in),  # each packet out, its echo back
            "round_trip_through_both_relays": rtt,
            "added_latency_per_relay_p99_ms": round(rtt["p99_ms"] / 2, 2) if rtt.get("matched") else None,
            "jitter_into_server_p99_ms": timing_in.get("jitter_ms", {}).get("p99"),
            "jitter_out_of_server_p99_ms": timing_out.get("jitter_ms", {}).get("p99"),
            "timing_out": timing_out,
            "per_relay": per_relay(win_in, to_uas, from_uas, win_out, min_pk)}


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


# --------------------------------------------------------------------------- the verdict

def level_head(pairs: int, duration_s: float, window: Window) -> dict:
    """The first entries of a level: its load, window and SIPp's outcome."""
    run = window.run
    return {"pairs": pairs, "duration_s": duration_s, "window_s": round(window.w1 - window.w0, 1),
            "successful": run.stat("SuccessfulCall(C)"), "failed": run.stat("FailedCall(C)"),
            "sipp_rc": run.returncode}


def per_packet(cpu_s: float, relayed: int):
    """CPU microseconds per relayed packet (None when nothing was relayed)."""
    return round(cpu_s * 1e6 / relayed, 2) if relayed else None


def calls_broken(level: dict) -> list[str]:
    """``["calls"]`` when a call failed or did not complete."""
    return ["calls"] if level["failed"] or level["successful"] < level["pairs"] else []


def timing_broken(t: dict) -> list[str]:
    """What the outgoing streams' timing (``rtp_probe.analyse``) fails of B3's criteria."""
    if not t.get("streams"):
        return ["no RTP captured"]
    return ([name for name, bad in (("interval p99", t["interval_dev_ms"]["p99"] > 2.0),
                                    ("max gap", t["max_gap_ms"] > 40.0),
                                    ("sequence errors", bool(t["streams_with_seq_errors"])))
             if bad])


def finish(level: dict, broken: list[str], run: common.SippRun) -> dict:
    """``level`` with its verdict (and SIPp's last errors when it failed)."""
    level["verdict"], level["passed"] = broken, not broken
    if run.errors and broken:
        level["sipp_errors_tail"] = run.errors[-600:]
    return level
