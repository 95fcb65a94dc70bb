"""Smoke test of the benchmark harness: ``bench/run.py --quick`` must run every benchmark
against the real server and write its results file with the expected keys.  The figures are
not asserted (CI machines differ); the harness must work.  Needs sipp and dumpcap (tshark),
which ./scripts/setup installs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import rtp_probe  # noqa: E402
from bench.run import ROWS  # noqa: E402

EXPECTED = {
    "b0_streams": ["streams_meeting_criteria", "worst_stream_p99_dev_ms", "streams_with_gaps",
                   "cpu_percent", "core0_timer_floor", "headline", "steps"],
    "b1_setup": ["setup_rate_cps", "invite_to_200_p99_ms_at_held", "reference_sipp_uas_cps",
                 "ratio_to_reference", "steps", "reference_steps"],
    "b2_ivr": ["concurrent_ivr_calls", "server_cpu_percent_per_call", "levels", "core0_timer_floor"],
    "b3_bridge": ["bridged_calls", "cpu_us_per_relayed_packet", "added_latency_per_relay_p99_ms",
                  "jitter_out_of_server_p99_ms", "reference_sipp_uas_cpu_us_per_echoed_packet", "levels"],
    "b3_srtp": ["cpu_us_per_relayed_packet_plain", "cpu_us_per_relayed_packet_srtp",
                "added_cpu_us_per_relayed_packet", "per_relay_p99_ms_srtp", "undecryptable_packets",
                "jitter_out_of_server_p99_ms_srtp", "levels_srtp"],
    "b4_timing": ["interval_ms", "drift_ms_max_abs", "streams_measured"],
    "b5_dtmf": ["us_per_channel_frame", "q24_min_percent_correct"],
    "b6_tts": ["real_time_factor", "first_packet_cached_ms", "first_packet_uncached_ms"],
    "b7_srtp": ["us_per_packet_plain", "us_per_packet_srtp", "added_us_per_packet",
                "library_us_protect_plus_unprotect", "runs"],
    "memory": ["rss_per_call_kb", "idle_growth_first_to_last_wave_mb", "waves_detail"],
}


def test_quick_run_writes_every_result(tmp_path):
    results = tmp_path / "results"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick",
                           "--results", str(results), "--work", str(tmp_path / "work")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    for name, keys in EXPECTED.items():
        data = json.loads((results / f"{name}.json").read_text())
        assert data["mode"] == "quick"
        assert data["machine"]["cores"] >= 1 and data["machine"]["cpu"]
        missing = [k for k in keys if k not in data["figures"]]
        assert not missing, f"{name}: missing {missing}"
    # the calls really ran: every SIPp call of the measured levels completed
    b1 = json.loads((results / "b1_setup.json").read_text())["figures"]
    assert b1["steps"][0]["successful"] == b1["steps"][0]["calls"] > 0
    b2 = json.loads((results / "b2_ivr.json").read_text())["figures"]["levels"][0]
    assert b2["digits_recognised_percent"] > 0 and b2["timing"]["streams"] > 0
    b3 = json.loads((results / "b3_bridge.json").read_text())["figures"]["levels"][0]
    assert b3["round_trip_through_both_relays"]["matched"] > 0
    summary = json.loads((results / "summary.json").read_text())
    assert summary["failed"] == [] and len(summary["rows"]) == len(ROWS)
    assert "| B1 | call setup rate" in proc.stdout


def test_probe_reads_back_a_stream_it_wrote(tmp_path):
    """The pcap reader (both paths) and the analysis on a stream with known timing."""
    path = rtp_probe.write_relay_pcap(tmp_path / "relay.pcap", 2.0)
    p = rtp_probe.read_pcap(path)
    assert len(p) == 100 and set(p.sport.tolist()) == {6000} and set(p.ssrc.tolist()) == {0x1234ABCD}
    assert np.allclose(np.diff(p.t), 0.02, atol=1e-6)
    result = rtp_probe.analyse(p)
    assert result["streams"] == 1 and result["streams_with_seq_errors"] == 0
    assert result["interval_dev_ms"]["max"] < 0.01 and abs(result["drift_ms"]["mean"]) < 0.01
    assert result["jitter_ms"]["max"] < 0.01
    # cut every record to 64 bytes, as dumpcap -s 64 does: the vectorised reader must agree
    data = path.read_bytes()
    out, off = bytearray(data[:24]), 24
    while off < len(data):
        sec, usec, incl, orig = np.frombuffer(data[off:off + 16], "<u4")
        out += np.array([sec, usec, 64, orig], "<u4").tobytes() + data[off + 16:off + 16 + 64]
        off += 16 + int(incl)
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(bytes(out))
    q = rtp_probe.read_pcap(cut)
    assert np.array_equal(q.seq, p.seq) and np.array_equal(q.key, p.key) and np.array_equal(q.ts, p.ts)


def test_jitter_and_gaps_are_detected():
    """A stream with one packet lost and one 15 ms late: the analysis must see both."""
    n = 200
    t = np.arange(n) * 0.02
    t[100] += 0.015
    seq = np.arange(n)
    keep = seq != 150
    ts = seq * 160
    p = rtp_probe.Packets(t[keep], np.full(keep.sum(), 7000), np.full(keep.sum(), 9),
                          np.zeros(keep.sum(), dtype=np.int64), seq[keep], ts[keep],
                          np.full(keep.sum(), 5), np.zeros(keep.sum(), dtype=np.uint64),
                          np.full(keep.sum(), 160))
    r = rtp_probe.analyse(p)
    assert r["streams_with_seq_errors"] == 1 and r["seq_missing"] == 1
    assert r["max_gap_ms"] == 40.0 and r["interval_ms"]["min"] == 5.0  # the lost one; the late one
    assert r["interval_dev_ms"]["max"] == 20.0 and r["jitter_ms"]["max"] > 0.1
