"""B0 media engine: N concurrent outbound RTP streams in one process, nothing else running.

The issue's criterion: "with 1000 concurrent outbound streams on one process, the send
interval of every stream has p99 |interval - 20 ms| <= 2 ms and no gaps".

A worker process (this module run with ``python -m bench.b0_streams``, pinned to core 0 like
the server) opens N ``RtpSession``s on 127.0.0.1 from a ``PortAllocator`` range, all on one
``MediaClock``, each playing a looping 1 s tone (``PcmSource(loop=0)``) to one discard
socket that the bench holds and never reads (the kernel drops what overflows its small
receive buffer: no ICMP, nothing to receive).  dumpcap on core 1 records the streams' RTP
ports; the window starts 1 s after every stream is playing.  Per stream, from the wire:
interval p99 / p99.9 / max deviation from 20 ms, frames skipped (an RTP timestamp step over
160: the media clock's late-tick policy), intervals over 40 ms and sequence errors.  The
worker also records, through two extra streams registered first and last on the clock, when
each tick started and how long it took to send every stream, and the garbage collector's
pauses.  ``timer_floor`` (a bare 20 ms sleep loop on core 0) runs before and after, and the
steal time of core 0 is read from /proc/stat, so machine noise can be told from our own.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make ``bench`` and ``ivr`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common, rtp_probe  # noqa: E402

TARGETS = {"streams": ">= 4000 concurrent outbound streams, every one meeting the criteria"}
CRITERIA = {"per_stream_interval_dev_p99_ms": "<= 2", "frames_skipped": "== 0",
            "intervals_over_40ms": "== 0", "sequence_errors": "== 0",
            "streams_captured": "== N, each with >= 95% of the window's packets"}
STEPS = [250, 500, 1000, 1500, 2000]
SETTLE_S = 1.0  # after "ready": the first ticks (count > 1 after the setup) are left out
DEV_LIMIT_MS = 2.0
_HIST_EDGES = [0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0, float("inf")]


# =========================================================================== the worker

class _TickProbe:
    """A stream that only records when it was ticked (wall clock, to match the capture)."""

    def __init__(self) -> None:
        self.t: list[float] = []
        self.count: list[int] = []

    def tick(self, count: int) -> None:
        self.t.append(time.time())
        self.count.append(count)


def _tone(seconds: float = 1.0) -> np.ndarray:
    n = int(8000 * seconds)
    t = np.arange(n) / 8000.0
    env = (np.arange(n) % 4000 < 3000)  # 375 ms of 440 + 620 Hz, 125 ms of silence
    return (np.sin(2 * np.pi * 440 * t) * 6000 + np.sin(2 * np.pi * 620 * t) * 4000) \
        .astype(np.int16) * env.astype(np.int16)


def worker(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description="B0 worker: N RtpSessions playing a looping tone")
    ap.add_argument("--streams", type=int, required=True)
    ap.add_argument("--ports", required=True, help="LOW-HIGH, the RtpSessions' port range")
    ap.add_argument("--dest", type=int, required=True, help="UDP port on 127.0.0.1 to send to")
    ap.add_argument("--lifetime", type=float, required=True, help="exit after this many seconds")
    ap.add_argument("--out", required=True, help="JSON file written on exit")
    args = ap.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * args.streams + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard > 0 else want, hard))

    from twisted.internet import reactor

    from ivr.media.player import PcmSource
    from ivr.rtp.clock import SERVER_PHASES, MediaClock
    from ivr.rtp.ports import PortAllocator
    from ivr.rtp.session import RtpSession

    low, high = (int(x) for x in args.ports.split("-"))
    clock = MediaClock(reactor, phases=SERVER_PHASES)  # as the server runs it
    ports = PortAllocator(low, high, reactor)
    first, last = _TickProbe(), _TickProbe()
    clock.register(first)
    tone = _tone()
    tone.setflags(write=False)  # frozen, as the server's prompt and TTS caches hand them out
    sessions = []
    t_setup = time.perf_counter()
    for _ in range(args.streams):
        s = RtpSession(reactor, clock, "127.0.0.1", ports=ports, media_timeout=0)
        s.set_remote("127.0.0.1", args.dest, 0, "PCMU")
        s.play(PcmSource(tone, loop=0)).addErrback(lambda _f: None)
        sessions.append(s)
    clock.register(last)
    setup_s = time.perf_counter() - t_setup

    pauses: list[tuple[float, int, float]] = []  # (wall time, generation, seconds)
    gc_start = [0.0]

    def on_gc(phase, info):
        if phase == "start":
            gc_start[0] = time.perf_counter()
        else:
            pauses.append((time.time(), info.get("generation", -1), time.perf_counter() - gc_start[0]))

    gc.callbacks.append(on_gc)

    def ready():
        sys.stdout.write(json.dumps({"ready": time.time(), "setup_s": round(setup_s, 3)}) + "\n")
        sys.stdout.flush()

    reactor.callWhenRunning(ready)
    reactor.callLater(args.lifetime, reactor.stop)
    reactor.run()  # SIGTERM from the bench stops it too
    gc.callbacks.remove(on_gc)
    sent = sum(s.stats()["packets_sent"] for s in sessions)
    errors = sum(s.stats()["send_errors"] for s in sessions)
    Path(args.out).write_text(json.dumps({
        "streams": len(sessions), "setup_s": round(setup_s, 3), "packets_sent": sent,
        "send_errors": errors, "clock": clock.metrics(), "first": [first.t, first.count],
        "last": [last.t, last.count], "gc": pauses}))
    return 0


# =========================================================================== the analysis

def _dist(values) -> dict:
    a = np.asarray(values, dtype=float)
    if not a.size:
        return {}
    return {"min": _r(a.min()), "p50": _r(np.percentile(a, 50)), "p90": _r(np.percentile(a, 90)),
            "p99": _r(np.percentile(a, 99)), "max": _r(a.max())}


def _hist(values) -> dict:
    counts, _ = np.histogram(np.asarray(values, dtype=float), bins=_HIST_EDGES)
    labels = [f"{a:g}-{b:g}" if b != float("inf") else f">{a:g}"
              for a, b in zip(_HIST_EDGES, _HIST_EDGES[1:])]
    return dict(zip(labels, (int(c) for c in counts)))


def _r(x) -> float:
    return round(float(x), 3)


def per_stream(window: rtp_probe.Packets, window_s: float) -> dict:
    """Every stream's figures, then their distribution over the streams and the worst one."""
    expected = window_s / rtp_probe.PTIME
    rows = []
    for s in rtp_probe.streams(window):
        if len(s) < 2:
            continue
        iv = np.diff(s.t) * 1000.0
        dev = np.abs(iv - rtp_probe.PTIME * 1000.0)
        dts = np.diff(s.ts) % (1 << 32)
        dseq = np.diff(s.seq) % 65536
        rows.append({"port": int(s.sport[0]), "packets": len(s),
                     "p99": float(np.percentile(dev, 99)), "p999": float(np.percentile(dev, 99.9)),
                     "max": float(dev.max()),
                     "skipped": int(((dts // 160) - 1).clip(min=0)[dts < (1 << 31)].sum()),
                     "over40": int((iv > 40.0).sum()), "seq": int((dseq != 1).sum())})
    if not rows:
        return {"streams": 0}
    col = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    ok = ((col["p99"] <= DEV_LIMIT_MS) & (col["skipped"] == 0) & (col["over40"] == 0)
          & (col["seq"] == 0) & (col["packets"] >= 0.95 * expected))
    worst = rows[int(np.argmax(col["p99"]))]
    # ports are allocated in order and the clock ticks streams in registration order, so port
    # order is the order of sending within a tick: late streams in a tick carry its variance
    by_port = col["p99"][np.argsort(col["port"])]
    tenth = max(1, len(by_port) // 10)
    return {
        "streams": len(rows), "streams_meeting_criteria": int(ok.sum()),
        "packets_per_stream": _dist(col["packets"]), "packets_expected_per_stream": _r(expected),
        "p99_dev_ms": _dist(col["p99"]), "p999_dev_ms": _dist(col["p999"]),
        "max_dev_ms": _dist(col["max"]),
        "streams_by_p99_dev_ms": _hist(col["p99"]), "streams_by_max_dev_ms": _hist(col["max"]),
        "frames_skipped": int(col["skipped"].sum()),
        "streams_with_skipped_frames": int((col["skipped"] > 0).sum()),
        "intervals_over_40ms": int(col["over40"].sum()),
        "streams_with_intervals_over_40ms": int((col["over40"] > 0).sum()),
        "sequence_errors": int(col["seq"].sum()), "streams_with_seq_errors": int((col["seq"] > 0).sum()),
        "p99_dev_ms_first_tenth_of_tick": _dist(by_port[:tenth]),
        "p99_dev_ms_last_tenth_of_tick": _dist(by_port[-tenth:]),
        "worst_stream": {k: (_r(v) if isinstance(v, float) else v) for k, v in worst.items()},
    }


def tick_figures(out: dict, w0: float, w1: float) -> dict:
    """From the worker's probes: tick start lateness against the ideal 20 ms grid (anchored at
    the earliest tick of the window) and the time one tick took to send every stream."""
    t0, c0 = (np.array(x, dtype=float) for x in out["first"])
    t1 = np.array(out["last"][0], dtype=float)
    n = min(len(t0), len(t1))
    t0, c0, t1 = t0[:n], c0[:n], t1[:n]
    m = (t0 >= w0) & (t0 <= w1)
    if m.sum() < 2:
        return {}
    t, counts, work = t0[m], c0[m], (t1[m] - t0[m]) * 1000.0
    phases = (out.get("clock") or {}).get("phases", 1)
    grid = np.concatenate([[0.0], np.cumsum(counts[1:])]) * rtp_probe.PTIME
    late = (t - t[0]) - grid
    late = (late - late.min()) * 1000.0
    pauses = [p for p in out.get("gc", []) if w0 <= p[0] <= w1]
    return {"ticks": int(m.sum()), "late_ticks": int((counts > 1).sum()),
            "missed_intervals": int((counts - 1).clip(min=0).sum()),
            "tick_lateness_ms": _dist(late),
            # With a phased clock the two probes sit in different phases: the time between
            # them is not one firing's work, so it is not reported.
            "tick_work_ms": _dist(work) if phases == 1 else None, "clock_phases": phases,
            "gc_collections": len(pauses),
            "gc_gen2_collections": sum(1 for p in pauses if p[1] == 2),
            "gc_pause_max_ms": _r(max((p[2] for p in pauses), default=0.0) * 1000.0)}


def _core_stat(core: str = common.SERVER_CORE) -> list[int]:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            return [int(x) for x in line.split()[1:]]
    return []


def _core0(delta: list[int], ours: float | None) -> dict:
    """Core 0 over the window from /proc/stat: idle, steal (the hypervisor), and busy time that
    was not the worker's (other processes, interrupts; loopback's softirq is partly ours)."""
    total = sum(delta)
    if len(delta) < 8 or not total:
        return {}
    idle, steal = 100.0 * (delta[3] + delta[4]) / total, 100.0 * delta[7] / total
    return {"idle_percent": _r(idle), "steal_percent": _r(steal),
            "busy_not_worker_percent": _r(max(0.0, 100.0 - idle - steal - (ours or 0.0)))}


def _user_sys(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / common.CLK_TCK, int(fields[12]) / common.CLK_TCK


def _ctx_switches(pid: int) -> tuple[int, int]:
    vol = inv = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches"):
            vol = int(line.split()[1])
        elif line.startswith("nonvoluntary_ctxt_switches"):
            inv = int(line.split()[1])
    return vol, inv


# =========================================================================== one level

def run_level(work: Path, streams: int, seconds: float, *, tag: str = "b0") -> dict:
    """``streams`` RtpSessions in one worker on core 0 for ``seconds`` (after SETTLE_S)."""
    level_dir = work / f"{tag}-{streams}"
    level_dir.mkdir(parents=True, exist_ok=True)
    low, high = common.free_range(2 * streams + 200)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sink.bind(("127.0.0.1", 0))
    out_path = level_dir / "worker.json"
    cap = common.Capture(level_dir / "rtp.pcap", f"udp src portrange {low}-{high} and udp[0:2] % 2 == 0")
    cmd = common.pinned(common.SERVER_CORE, [
        sys.executable, "-m", "bench.b0_streams", "--streams", str(streams),
        "--ports", f"{low}-{high}", "--dest", str(sink.getsockname()[1]),
        "--lifetime", str(SETTLE_S + seconds + 60), "--out", str(out_path)])
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    err = open(level_dir / "worker.log", "wb")
    proc = subprocess.Popen(cmd, cwd=common.ROOT, env=env, stdout=subprocess.PIPE, stderr=err,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()  # the worker's "ready" line (or EOF if it died)
        if not line.strip():
            proc.wait(10)
            raise common.BenchError(f"B0 worker did not start:\n"
                                    f"{(level_dir / 'worker.log').read_text()[-2000:]}")
        ready = json.loads(line)
        w0 = ready["ready"] + SETTLE_S
        w1 = w0 + seconds
        _sleep_until(w0)
        cpu = common.CpuWindow(proc.pid).start()
        ctx0, stat0, us0 = _ctx_switches(proc.pid), _core_stat(), _user_sys(proc.pid)
        rss = common.rss_bytes(proc.pid)
        _sleep_until(w1)
        cpu_fig = cpu.stop()
        ctx1, stat1, us1 = _ctx_switches(proc.pid), _core_stat(), _user_sys(proc.pid)
        time.sleep(0.3)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err.close()
        cap_info = cap.stop()
        sink.close()
    worker_out = json.loads(out_path.read_text()) if out_path.exists() else {}
    packets = rtp_probe.read_pcap(level_dir / "rtp.pcap")
    window = packets.where((packets.t >= w0) & (packets.t <= w1))
    timing = per_stream(window, w1 - w0)
    pooled = rtp_probe.analyse(window, min_packets=10)
    delta = [b - a for a, b in zip(stat0, stat1)]
    level = {
        "streams": streams, "seconds": seconds, "window_s": round(w1 - w0, 2),
        "worker_setup_s": ready.get("setup_s"),
        "cpu": {**cpu_fig, "user_s": _r(us1[0] - us0[0]), "system_s": _r(us1[1] - us0[1])},
        "rss_mb": round(rss / 2**20, 1),
        "context_switches": {"voluntary": ctx1[0] - ctx0[0], "involuntary": ctx1[1] - ctx0[1]},
        "core0": _core0(delta, cpu_fig["cpu_percent"]),
        "per_stream": timing,
        "pooled": {k: pooled.get(k) for k in ("packets", "interval_ms", "interval_dev_ms",
                                              "max_gap_ms", "jitter_ms", "drift_ms")},
        "ticks": tick_figures(worker_out, w0, w1) if worker_out else {},
        "worker_packets_sent": worker_out.get("packets_sent"),
        "worker_send_errors": worker_out.get("send_errors"), **cap_info,
    }
    level["verdict"] = verdict(level)
    level["passed"] = not level["verdict"]
    if os.environ.get("IVR_BENCH_KEEP_PCAP") != "1":
        (level_dir / "rtp.pcap").unlink(missing_ok=True)
    return level


def _sleep_until(when: float) -> None:
    delay = when - time.time()
    if delay > 0:
        time.sleep(delay)


def verdict(level: dict) -> list[str]:
    """The criteria this level broke (empty: it passed)."""
    t = level["per_stream"]
    if not t.get("streams"):
        return ["no RTP captured"]
    broken = []
    if t["streams"] < level["streams"]:
        broken.append(f"only {t['streams']} of {level['streams']} streams captured")
    if t["p99_dev_ms"]["max"] > DEV_LIMIT_MS:
        broken.append(f"{level['streams'] - t['streams_meeting_criteria']} streams over "
                      f"{DEV_LIMIT_MS:g} ms p99 or with gaps")
    for key in ("frames_skipped", "intervals_over_40ms", "sequence_errors"):
        if t[key]:
            broken.append(f"{key} {t[key]}")
    if level.get("capture_dropped"):
        broken.append(f"capture dropped {level['capture_dropped']} (the figures are incomplete)")
    return broken


def summary(level: dict) -> str:
    t, k = level["per_stream"], level.get("ticks", {})
    return (f"{level['streams']:5d} streams: {t.get('streams_meeting_criteria')} meet it; per-stream p99 "
            f"dev p50 {t.get('p99_dev_ms', {}).get('p50')} max {t.get('p99_dev_ms', {}).get('max')} ms, "
            f"max dev {t.get('max_dev_ms', {}).get('max')} ms, skipped {t.get('frames_skipped')}, "
            f">40ms {t.get('intervals_over_40ms')}, seq {t.get('sequence_errors')}; cpu "
            f"{level['cpu']['cpu_percent']}% (core 0 busy with others "
            f"{level['core0'].get('busy_not_worker_percent')}%), tick work p50 "
            f"{(k.get('tick_work_ms') or {}).get('p50')} p99 "
            f"{(k.get('tick_work_ms') or {}).get('p99')} ms, clock phases {k.get('clock_phases')}"
            f" -> {'ok' if level['passed'] else level['verdict']}")


# =========================================================================== the benchmark

def run(work: Path, mode: str, context: dict) -> dict:
    quick = mode == "quick"
    # run.py --b0-streams/--b0-seconds, or the environment (a CI smoke run: 200 streams, 5 s)
    n = int(context.get("b0_streams") or os.environ.get("IVR_BENCH_B0_STREAMS") or 1000)
    seconds = float(context.get("b0_seconds") or os.environ.get("IVR_BENCH_B0_SECONDS")
                    or (10.0 if quick else 60.0))
    floor_s = 3.0 if quick else 10.0
    floor_before = common.timer_floor(floor_s)
    head = run_level(work, n, seconds)
    print("  B0 " + summary(head), flush=True)
    floor_after = common.timer_floor(floor_s)
    steps, best = [], None
    if not quick:
        step_s = float(context.get("seconds") or 20.0)
        for k in STEPS:
            level = run_level(work, k, step_s, tag="b0-step")
            print("  B0 step " + summary(level), flush=True)
            steps.append(level)
        passed = [l["streams"] for l in steps if l["passed"]]
        best = max(passed) if passed else 0
    t = head["per_stream"]
    return {"targets": {**TARGETS, "criteria": CRITERIA}, "figures": {
        "streams": n, "seconds": seconds,
        "streams_meeting_criteria": t.get("streams_meeting_criteria", 0),
        "worst_stream_p99_dev_ms": t.get("p99_dev_ms", {}).get("max"),
        "worst_stream_p999_dev_ms": t.get("p999_dev_ms", {}).get("max"),
        "worst_stream_max_dev_ms": t.get("max_dev_ms", {}).get("max"),
        "streams_with_gaps": max(t.get("streams_with_skipped_frames", 0),
                                 t.get("streams_with_intervals_over_40ms", 0),
                                 t.get("streams_with_seq_errors", 0)) if t.get("streams") else None,
        "cpu_percent": head["cpu"]["cpu_percent"],
        "cpu_us_per_packet": _r(head["cpu"]["cpu_s"] * 1e6
                                / max(1, head["pooled"].get("packets") or 0)),  # captured ones
        "passed": head["passed"],
        "max_streams_meeting_criteria": best,
        "core0_timer_floor": floor_before, "core0_timer_floor_after": floor_after,
        "ivr_rtp_uncommitted_changes": _dirty(),
        "headline": head, "steps": steps}}


def _dirty() -> list[str]:
    """Uncommitted changes in the media engine when this ran (the commit alone would mislead)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "ivr/rtp", "ivr/media"], cwd=common.ROOT,
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ["?"]
    return [l.strip() for l in out.splitlines() if l.strip()]


# =========================================================================== in process

def inprocess(streams: int = 1000, periods: int = 150, receive: bool = False,
              null_send: bool = False, warmup: int = 20) -> dict:
    """The media clock's CPU per stream and 20 ms period, without the reactor, dumpcap or a
    second process: N sessions as the server builds them (``PortAllocator`` with a
    ``MediaReceiver``, the four-phase clock) on a ``task.Clock``, each playing the frozen
    looping tone to one discard socket; each period the clock is advanced by its four
    firings and only those are timed (``time.process_time``).  ``receive``: a peer socket
    sends every session one 20 ms PCMU packet per period first (read and accounted in the
    firings).  ``null_send``: the firings' packets are handed to a backend that drops them,
    so the figure is the Python work alone.  Deterministic apart from the machine: an A/B
    check between commits (run old and new alternately and compare medians)."""
    import struct

    from twisted.internet import task

    from ivr.media.player import PcmSource
    from ivr.rtp.clock import SERVER_PHASES, MediaClock
    from ivr.rtp.ports import PortAllocator
    from ivr.rtp.receiver import MediaReceiver
    from ivr.rtp.session import RtpSession

    class _Drop:
        name = "drop"

        def send_many(self, socks, datas, addrs):
            return []

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * streams + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard > 0 else want, hard))
    clock = task.Clock()
    receiver = MediaReceiver()
    media = MediaClock(clock, phases=SERVER_PHASES, receiver=receiver,
                       **({"io": _Drop()} if null_send else {}))
    low, high = common.free_range(streams * 2 + 40)
    ports = PortAllocator(low, high, receiver=receiver)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # overflows: dropped, no ICMP
    tone = _tone()
    tone.setflags(write=False)
    sessions = []
    for _ in range(streams):
        s = RtpSession(clock, media, "127.0.0.1", ports=ports, media_timeout=30.0)
        s.set_remote("127.0.0.1", sink.getsockname()[1], 0, "PCMU", telephone_event_pt=101)
        s.play(PcmSource(tone, loop=0)).addErrback(lambda _f: None)
        sessions.append(s)
    header = struct.Struct("!BBHII")
    payload = bytes(range(160))
    step = media.interval / media.phases
    per_period = []
    for k in range(warmup + periods):
        if receive:
            for i, s in enumerate(sessions):  # the sink is each session's far end: no re-latch
                sink.sendto(header.pack(0x80, 0, k & 0xFFFF, (k * 160) & 0xFFFFFFFF, i) + payload,
                            ("127.0.0.1", s.local_port))
        t = time.process_time()
        for _ in range(media.phases):
            clock.advance(step)
        if k >= warmup:
            per_period.append(time.process_time() - t)
    stats = [s.stats() for s in sessions]
    for s in sessions:
        s.close()
    receiver.close()
    sink.close()
    us = sorted(x * 1e6 / streams for x in per_period)
    return {"streams": streams, "periods": periods, "receive": receive, "null_send": null_send,
            "socket_io": "drop" if null_send else media.batch.io.name,
            "us_per_stream_period": {"mean": _r(sum(us) / len(us)), "p10": _r(us[len(us) // 10]),
                                     "p50": _r(us[len(us) // 2])},
            "packets_sent": sum(x["packets_sent"] for x in stats),
            "packets_received": sum(x["packets_received"] for x in stats)}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--inprocess"]:  # [N [PERIODS]] [receive] [null]
        nums = [int(a) for a in sys.argv[2:] if a.isdigit()]
        print(json.dumps(inprocess(*nums[:2], receive="receive" in sys.argv,
                                   null_send="null" in sys.argv)))
        sys.exit(0)
    sys.exit(worker(sys.argv[1:]))
