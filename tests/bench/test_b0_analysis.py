"""B0's per-stream analysis on synthetic captures with known timing (no processes, no capture)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import b0_streams, rtp_probe  # noqa: E402


def _streams(n_streams: int, n: int, *, jitter=None, skip=None) -> rtp_probe.Packets:
    """``n_streams`` streams of ``n`` packets 20 ms apart; ``jitter(i, t)`` moves send times,
    ``skip`` = (stream, index): that packet is not sent and the timestamp jumps 320 (a late tick)."""
    cols = {k: [] for k in ("t", "sport", "dport", "pt", "seq", "ts", "ssrc", "key", "plen")}
    for i in range(n_streams):
        t = np.arange(n) * 0.02 + 0.0001 * i
        ts = np.arange(n) * 160
        seq = np.arange(n)
        if jitter is not None:
            t = jitter(i, t)
        if skip is not None and skip[0] == i:
            keep = np.arange(n) != skip[1]
            t, ts = t[keep], ts[keep]
            seq = np.arange(len(t))  # contiguous: one frame sent, the timestamp jumps
        m = len(t)
        for k, v in (("t", t), ("sport", np.full(m, 40000 + 2 * i)), ("dport", np.full(m, 9)),
                     ("pt", np.zeros(m)), ("seq", seq), ("ts", ts), ("ssrc", np.full(m, 100 + i)),
                     ("key", np.zeros(m)), ("plen", np.full(m, 160))):
            cols[k].append(v)
    arr = {k: np.concatenate(v) for k, v in cols.items()}
    return rtp_probe.Packets(arr["t"], *(arr[k].astype(np.int64) for k in
                                         ("sport", "dport", "pt", "seq", "ts", "ssrc")),
                             arr["key"].astype(np.uint64), arr["plen"].astype(np.int64))


def test_perfect_streams_all_meet_the_criteria():
    r = b0_streams.per_stream(_streams(5, 500), 10.0)
    assert r["streams"] == 5 and r["streams_meeting_criteria"] == 5
    assert r["p99_dev_ms"]["max"] < 0.01 and r["frames_skipped"] == 0
    assert r["intervals_over_40ms"] == 0 and r["sequence_errors"] == 0
    assert r["streams_by_p99_dev_ms"]["0-0.5"] == 5


def test_one_jittery_stream_and_one_late_tick_are_found():
    def jitter(i, t):
        t = t.copy()
        if i == 2:  # every 10th packet 5 ms late: p99 of |dev| is 5 ms for this stream only
            t[::10] += 0.005
        if i == 1:  # a 45 ms stall, then back on time; the other 498 intervals are perfect
            t[300:] += 0.025
        return t
    r = b0_streams.per_stream(_streams(4, 500, jitter=jitter, skip=(3, 250)), 10.0)
    assert r["streams"] == 4 and r["streams_meeting_criteria"] == 1
    assert r["worst_stream"]["port"] == 40004 and abs(r["worst_stream"]["p99"] - 5.0) < 1e-6
    assert r["frames_skipped"] == 1 and r["streams_with_skipped_frames"] == 1
    assert r["intervals_over_40ms"] >= 1 and r["streams_with_intervals_over_40ms"] >= 1
    assert abs(r["max_dev_ms"]["max"] - 25.0) < 1e-6  # the stall; its p99 stays under 2 ms
    assert r["streams_by_p99_dev_ms"]["2-5"] == 1 or r["streams_by_p99_dev_ms"]["5-10"] == 1
    level = {"streams": 4, "per_stream": r, "capture_dropped": 0}
    broken = b0_streams.verdict(level)
    assert any("frames_skipped" in b for b in broken) and any("streams over" in b for b in broken)


def test_missing_stream_fails_the_level():
    r = b0_streams.per_stream(_streams(3, 500), 10.0)
    assert b0_streams.verdict({"streams": 4, "per_stream": r}) == ["only 3 of 4 streams captured"]
    assert b0_streams.verdict({"streams": 3, "per_stream": r}) == []


def test_tick_figures_from_the_worker_probes():
    t = 1000.0 + np.arange(100) * 0.02
    counts = np.ones(100, dtype=int)
    t[50] += 0.003  # one tick 3 ms late
    t[60:] += 0.02  # a missed interval: the tick at 60 reports count 2
    counts[60] = 2
    out = {"first": [t.tolist(), counts.tolist()], "last": [(t + 0.004).tolist(), counts.tolist()],
           "gc": [[1000.5, 2, 0.012], [999.0, 0, 0.5]]}
    f = b0_streams.tick_figures(out, 1000.0, 1003.0)
    assert f["ticks"] == 100 and f["late_ticks"] == 1 and f["missed_intervals"] == 1
    assert abs(f["tick_lateness_ms"]["max"] - 3.0) < 1e-6 and f["tick_lateness_ms"]["p50"] < 1e-6
    assert abs(f["tick_work_ms"]["p50"] - 4.0) < 1e-6
    assert f["gc_collections"] == 1 and f["gc_gen2_collections"] == 1 and f["gc_pause_max_ms"] == 12.0
