"""bench/b3_rtpengine.py (B3R, B3 with the media anchored at rtpengine): the analysis on a
synthetic capture with known delays, and a tiny run against the real server, rtpengine and
SIPp (keys and correctness, not the figures: every call up and anchored, none of the
relayed audio on the server's own RTP ports).  Needs sipp, dumpcap and rtpengine-daemon
(./scripts/setup)."""
from __future__ import annotations

import numpy as np

from bench import b3_rtpengine
from bench.rtp_probe import Packets

KEYS = ["cpu_us_per_relayed_packet_rtpengine", "server_cpu_us_per_relayed_packet_rtpengine",
        "rtpengine_cpu_us_per_relayed_packet", "cpu_us_per_relayed_packet_inprocess",
        "reference_sipp_uas_cpu_us_per_echoed_packet", "cost_ratio_to_reference_rtpengine",
        "cost_ratio_to_reference_inprocess", "per_relay_p50_ms_rtpengine", "per_relay_p99_ms_rtpengine",
        "per_relay_p99_ms_inprocess", "jitter_into_server_p99_ms_rtpengine",
        "jitter_out_of_server_p99_ms_rtpengine", "jitter_added_p99_ms_rtpengine",
        "jitter_added_p99_ms_inprocess", "server_rtp_packets_in_window_rtpengine",
        "bridged_calls_rtpengine", "bridged_calls_inprocess", "failed_calls_rtpengine", "levels"]

CALLER, RELAY_A, RELAY_B, UAS, SERVER = 7000, 31000, 31002, 20000, 40000


def _capture(n: int = 200, stray: int = 3) -> Packets:
    """One call through a relay: caller -> A (0.3 ms) B -> uas, echo (1 ms) uas -> B (0.5 ms)
    A -> caller, 20 ms apart; and ``stray`` packets on the server's own port."""
    rows = []
    for i in range(n):
        t, key, ts = 10.0 + i * 0.02, 1000 + i, 160 * i
        rows += [(t, CALLER, RELAY_A, key, ts), (t + 0.0003, RELAY_B, UAS, key, ts),
                 (t + 0.0013, UAS, RELAY_B, key, ts), (t + 0.0018, RELAY_A, CALLER, key, ts)]
    rows += [(11.0 + i * 0.02, CALLER, SERVER, 5, 0) for i in range(stray)]
    rows.sort()
    col = lambda j, dt=np.int64: np.array([r[j] for r in rows], dtype=dt)  # noqa: E731
    seq = np.arange(len(rows), dtype=np.int64)
    return Packets(col(0, float), col(1), col(2), np.zeros(len(rows), np.int64), seq, col(4),
                   np.ones(len(rows), np.int64), col(3, np.uint64), np.full(len(rows), 160))


def test_analysis_measures_the_relay_range_and_counts_the_servers_ports():
    fig = b3_rtpengine.analyse(_capture(), UAS, (31000, 31099), (40000, 40099), 9.0, 20.0)
    rel = fig["per_relay"]
    assert rel["caller_to_uas"]["matched"] == 200 and abs(rel["caller_to_uas"]["p50_ms"] - 0.3) < 0.01
    assert rel["uas_to_caller"]["matched"] == 200 and abs(rel["uas_to_caller"]["p50_ms"] - 0.5) < 0.01
    assert abs(fig["round_trip_through_both_relays"]["p50_ms"] - 1.8) < 0.01
    assert fig["relayed_packets_in_window"] == 400  # 200 in on A, each relayed out and back
    assert fig["server_rtp_packets_in_window"] == 3
    assert b3_rtpengine.analyse(_capture(stray=0), UAS, (31000, 31099), (40000, 40099), 9.0,
                                20.0)["server_rtp_packets_in_window"] == 0


def test_another_processs_packets_in_the_relay_range_are_skipped():
    """Another run's relay.pcap (same payloads) through a port of the same range: left out
    when rtpengine's ports for our calls are known, and counted."""
    ours, theirs = _capture(stray=0), _capture(stray=0)
    shift = lambda ports: np.where((ports >= 31000) & (ports <= 31099), ports + 50, ports + 1)  # noqa: E731
    theirs = Packets(theirs.t + 0.0001, shift(theirs.sport), shift(theirs.dport), theirs.pt,
                     theirs.seq, theirs.ts, theirs.ssrc, theirs.key, theirs.plen)
    both = Packets(*(np.concatenate([getattr(ours, f), getattr(theirs, f)])
                     for f in ours.__dataclass_fields__))
    mixed = b3_rtpengine.analyse(both, UAS, (31000, 31099), (40000, 40099), 9.0, 20.0)
    assert mixed["relayed_packets_in_window"] == 1200  # their uas looks like a caller too
    clean = b3_rtpengine.analyse(both, UAS, (31000, 31099), (40000, 40099), 9.0, 20.0,
                                 ours={RELAY_A, RELAY_B})
    assert clean["relayed_packets_in_window"] == 400 and clean["foreign_packets_skipped"] == 800
    assert clean["per_relay"]["caller_to_uas"]["matched"] == 200


def test_another_processs_packets_on_a_server_port_are_skipped_not_counted():
    """The server's range lies among the ephemeral ports: a test elsewhere on the box
    talking between two ephemeral ports, one of them inside it, is not the run's traffic;
    the caller (it talked to rtpengine) and the far end reaching a server port are."""
    ours = _capture(stray=2)
    extra = [(12.0 + i * 0.02, 45000, SERVER + 7) for i in range(50)]      # ephemeral -> server port
    extra += [(12.5, UAS, SERVER + 1)]                                       # the far end: counted
    t = np.array([r[0] for r in extra])
    n = len(extra)
    theirs = Packets(t, np.array([r[1] for r in extra]), np.array([r[2] for r in extra]),
                     np.zeros(n, np.int64), np.arange(n), np.zeros(n, np.int64),
                     np.ones(n, np.int64), np.full(n, 9, np.uint64), np.full(n, 160))
    both = Packets(*(np.concatenate([getattr(ours, f), getattr(theirs, f)])
                     for f in ours.__dataclass_fields__))
    for known in (None, {RELAY_A, RELAY_B}):
        fig = b3_rtpengine.analyse(both, UAS, (31000, 31099), (40000, 40099), 9.0, 20.0, known)
        assert fig["server_rtp_packets_in_window"] == 3       # the caller's 2 and the far end's 1
        assert fig["foreign_packets_skipped"] == 50
        assert fig["relayed_packets_in_window"] == 400

def test_tiny_b3r_run_anchors_every_call_at_rtpengine(tmp_path):
    out = b3_rtpengine.run(tmp_path, "quick", {"seconds": 5.0, "b3r_pairs": [1]})
    figures = out["figures"]
    missing = [k for k in KEYS if k not in figures]
    assert not missing, missing
    level = figures["levels"][0]
    r = level["rtpengine"]
    assert r["successful"] == 1 and r["failed"] == 0, r.get("sipp_errors_tail")
    assert r["anchored_legs_logged"] == 2 and r["fallbacks_logged"] == 0
    assert r["calls_at_rtpengine_in_window"] == 1
    assert r["server_rtp_packets_in_window"] == 0 and r["relayed_packets_in_window"] > 0
    assert r["per_relay"]["caller_to_uas"]["matched"] > 0 and r["per_relay"]["uas_to_caller"]["matched"] > 0
    assert r["rtpengine_cpu"]["cpu_s"] >= 0 and figures["cpu_us_per_relayed_packet_rtpengine"] > 0
    assert level["inprocess"]["successful"] == 1 and level["reference"]["successful"] == 1
