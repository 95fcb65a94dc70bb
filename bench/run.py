"""Run the benchmarks: ``.venv/bin/python bench/run.py [--quick|--full] [--only B1,B3,...]``.

Quick mode (about a minute and a half) is the everyday check and CI's smoke test; full mode
gives the published figures.  Each benchmark writes ``<results>/<name>.json``; the table
printed at the end (also ``summary.json``) sets every figure beside its target and, where the
harness has one, beside SIPp's own figure on the same core.  See bench/README.md.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

# One BLAS thread before numpy loads: the figures are per core (B5 measured 7x slower with
# two BLAS threads fighting over a 2-core box).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402

# id, module, results name.  B3 runs before B2: B2 reports its cost against B3's reference.
BENCHMARKS = [("B0", "b0_streams", "b0_streams"), ("B1", "b1_setup", "b1_setup"),
              ("B3", "b3_bridge", "b3_bridge"), ("B3S", "b3_srtp", "b3_srtp"),
              ("B3R", "b3_rtpengine", "b3_rtpengine"), ("B2", "b2_ivr", "b2_ivr"),
              ("B4", "b4_timing", "b4_timing"), ("B5", "b5_dtmf", "b5_dtmf"), ("B6", "b6_tts", "b6_tts"),
              ("B7", "b7_srtp", "b7_srtp"), ("B8", "b8_farm", "b8_farm"),
              ("B9", "b9_speech", "b9_speech"), ("B10", "b8_webrtc", "b8_webrtc"),
              ("MEM", "memory", "memory")]

# (benchmark, label, path into figures, target text, check(value) -> bool | None, ratio path);
# the targets are issue #17's (media plane and call setup) and #15's (B7)
ROWS = [
    ("B0", "streams meeting the interval criteria (of B0's N)", "streams_meeting_criteria", ">= 4000",
     lambda v: v >= 4000, None),
    ("B0", "interval deviation p99, worst stream (ms)", "worst_stream_p99_dev_ms", "<= 2", lambda v: v <= 2, None),
    ("B0", "streams with gaps (skipped frames, > 40 ms, seq errors)", "streams_with_gaps", "0",
     lambda v: v == 0, None),
    ("B0", "worker CPU % / us per packet", ("cpu_percent", "cpu_us_per_packet"), "-", None, None),
    ("B0", "most streams meeting the criteria (full: step series)", "max_streams_meeting_criteria",
     ">= 4000", lambda v: v >= 4000, None),
    ("B0", "core 0 timer floor, deviation p99 (ms)", ("core0_timer_floor", "p99_dev_ms"), "-", None, None),
    ("B1", "call setup rate (calls/s)", "setup_rate_cps", ">= 1000", lambda v: v >= 1000, "ratio_to_reference"),
    ("B1", "INVITE->200 p99 at that rate (ms)", "invite_to_200_p99_ms_at_held", "< 100", lambda v: v < 100, None),
    ("B2", "concurrent IVR calls", "concurrent_ivr_calls", ">= 2000", lambda v: v >= 2000, None),
    ("B2", "server CPU % per IVR call", "server_cpu_percent_per_call", "-", None, "cost_ratio_to_reference"),
    ("B3", "bridged calls", "bridged_calls", ">= 1000", lambda v: v >= 1000, None),
    ("B3", "CPU us per relayed packet", "cpu_us_per_relayed_packet", "<= 10", lambda v: v <= 10,
     "cost_ratio_to_reference"),
    ("B3", "added latency per relay p99 (ms)", "added_latency_per_relay_p99_ms", "<= 1", lambda v: v <= 1, None),
    ("B3", "echo line added delay p99 (ms)", "echo_added_delay_p99_ms", "<= 20", lambda v: v <= 20, None),
    ("B3", "jitter out / in, p99 (ms)", ("jitter_out_of_server_p99_ms", "jitter_into_server_p99_ms"), "-", None, None),
    ("B3S", "SRTP both legs: CPU us per relayed packet, plain / SRTP",
     ("cpu_us_per_relayed_packet_plain", "cpu_us_per_relayed_packet_srtp"), "-", None, None),
    ("B3S", "SRTP both legs: added CPU us per relayed packet", "added_cpu_us_per_relayed_packet", "-", None, None),
    ("B3S", "SRTP both legs: per relay p50 / p99 (ms)", ("per_relay_p50_ms_srtp", "per_relay_p99_ms_srtp"),
     "-", None, None),
    ("B3S", "SRTP both legs: undecryptable packets", "undecryptable_packets", "0", lambda v: v == 0, None),
    ("B3R", "rtpengine: CPU us per relayed packet (server + rtpengine)", "cpu_us_per_relayed_packet_rtpengine",
     "<= 10", lambda v: v <= 10, "cost_ratio_to_reference_rtpengine"),
    ("B3R", "rtpengine: in-process relay, same run, CPU us per relayed packet",
     "cpu_us_per_relayed_packet_inprocess", "<= 10", lambda v: v <= 10, "cost_ratio_to_reference_inprocess"),
    ("B3R", "rtpengine: CPU us per relayed packet, server / rtpengine",
     ("server_cpu_us_per_relayed_packet_rtpengine", "rtpengine_cpu_us_per_relayed_packet"), "-", None, None),
    ("B3R", "rtpengine: per relay p99 (ms), rtpengine / in-process",
     ("per_relay_p99_ms_rtpengine", "per_relay_p99_ms_inprocess"), "<= 1", None, None),
    ("B3R", "rtpengine: per relay p99 (ms)", "per_relay_p99_ms_rtpengine", "<= 1", lambda v: v <= 1, None),
    ("B3R", "rtpengine: jitter in / out p99 (ms)",
     ("jitter_into_server_p99_ms_rtpengine", "jitter_out_of_server_p99_ms_rtpengine"), "out <= in + 1", None, None),
    ("B3R", "rtpengine: jitter added p99 (ms), rtpengine / in-process",
     ("jitter_added_p99_ms_rtpengine", "jitter_added_p99_ms_inprocess"), "<= 1", None, None),
    ("B3R", "rtpengine: bridged calls held, rtpengine / in-process",
     ("bridged_calls_rtpengine", "bridged_calls_inprocess"), ">= 1000", None, None),
    ("B4", "interval p99 (ms)", ("interval_ms", "p99"), "-", None, None),
    ("B4", "interval p99.9 (ms)", ("interval_ms", "p999"), "-", None, None),
    ("B4", "interval max (ms)", ("interval_ms", "max"), "-", None, None),
    ("B4", "RTP clock drift vs wall, max (ms)", "drift_ms_max_abs", "<= 20", lambda v: v <= 20, None),
    ("B5", "DTMF detection us per channel-frame", "us_per_channel_frame", "<= 5", lambda v: v <= 5, None),
    ("B5", "Q.24 worst condition (% correct)", "q24_min_percent_correct", "-", None, None),
    ("B6", "TTS real-time factor (max)", ("real_time_factor", "rtf_max"), "-", None, None),
    ("B6", "first packet, cached, p99 (ms)", ("first_packet_cached_ms", "p99"), "<= 20", lambda v: v <= 20, None),
    ("B6", "first packet, uncached, p99 (ms)", ("first_packet_uncached_ms", "p99"), "<= 100",
     lambda v: v <= 100, None),
    ("MEM", "RSS per IVR call (KB)", "rss_per_call_kb", "<= 30", lambda v: v <= 30, None),
    ("B7", "SRTP: CPU us per packet, plain / with SRTP", ("us_per_packet_plain", "us_per_packet_srtp"),
     "-", None, None),
    ("B7", "SRTP: added CPU us per packet (protect + unprotect)", "added_us_per_packet", "<= 3",
     lambda v: v <= 3, None),
    ("B10", "WebRTC echo: server CPU ms per call-second, WebRTC / plain",
     ("server_cpu_ms_per_call_second_webrtc", "server_cpu_ms_per_call_second_plain"), "-", None, None),
    ("B10", "WebRTC echo: CPU per call, WebRTC / plain", "cpu_ratio_webrtc_to_plain", "-", None, None),
    ("B10", "WebRTC echo: server CPU us per echoed packet, WebRTC / plain",
     ("server_cpu_us_per_echoed_packet_webrtc", "server_cpu_us_per_echoed_packet_plain"), "-", None, None),
    ("B10", "WebRTC echo: INVITE->first echo p99 (ms)", ("setup_ms_webrtc", "p99"), "-", None, None),
    ("B10", "WebRTC echo: failed calls", "failed_calls_webrtc", "0", lambda v: v == 0, None),
    ("B10", "WebRTC echo: packet loss (%)", "packet_loss_percent_webrtc", "0", lambda v: v == 0, None),
    ("B8", "farm: setup rate through Kamailio, 1 / 2 nodes (calls/s)",
     ("setup_rate_cps_1_node", "setup_rate_cps_2_nodes"), "-", None, None),
    ("B8", "farm: INVITE->200 p99 at that rate, 1 / 2 nodes (ms)",
     ("invite_to_200_p99_ms_1_node", "invite_to_200_p99_ms_2_nodes"), "< 100", None, None),
    ("B8", "farm: failed calls (held steps)", "failed_calls", "0", lambda v: v == 0, None),
    ("B8", "farm: Kamailio CPU us per call", "kamailio_cpu_us_per_call", "-", None, None),
    ("B9", "speech: accuracy at 20 / 10 dB SNR (%)", ("accuracy_percent_20db", "accuracy_percent_10db"),
     ">= 95 at 20 dB", None, None),
    ("B9", "speech: accuracy at 20 dB SNR (%)", "accuracy_percent_20db", ">= 95", lambda v: v >= 95, None),
    ("B9", "speech: end of speech -> result p95 under load (ms)", "latency_p95_ms", "<= 300",
     lambda v: v <= 300, None),
    ("B9", "speech: concurrent gathers / CPU % per recogniser", ("load_calls",
     "cpu_percent_per_concurrent_recogniser"), "50 / -", None, None),
    ("B9", "speech: 20 ms tick p99 deviation, idle / under load (ms)", "pacing_p99_dev_ms_idle_vs_load",
     "-", None, None),
    ("MEM", "idle RSS growth over the waves (MB)", "idle_growth_first_to_last_wave_mb", "flat", None, None),
]


def _get(figures: dict, path):
    if isinstance(path, tuple) and all(isinstance(p, str) for p in path) and path[0] in figures \
            and not isinstance(figures.get(path[0]), dict):
        return " / ".join(str(figures.get(p)) for p in path)  # two figures side by side
    node = figures
    for key in (path if isinstance(path, tuple) else (path,)):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def table(results: dict) -> tuple[str, list]:
    lines = ["| bench | figure | measured | target | met | x SIPp |", "|---|---|---|---|---|---|"]
    rows = []
    for bench, label, path, target, check, ratio_path in ROWS:
        if bench not in results:
            continue
        figures = results[bench].get("figures", {})
        value = _get(figures, path)
        met = None
        if check is not None and isinstance(value, (int, float)):
            met = bool(check(value))
        ratio = figures.get(ratio_path) if ratio_path else None
        rows.append({"bench": bench, "figure": label, "value": value, "target": target, "met": met,
                     "ratio_to_sipp": ratio})
        lines.append(f"| {bench} | {label} | {value} | {target} | "
                     f"{'-' if met is None else ('yes' if met else 'NO')} | {'' if ratio is None else ratio} |")
    return "\n".join(lines), rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="ivr benchmarks (bench/README.md)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="about a minute and a half (default)")
    mode.add_argument("--full", action="store_true", help="the published figures (long)")
    parser.add_argument("--only", default="", help="comma-separated: B0,B1,B2,B3,B3S,B3R,B4,B5,B6,B7,B8,B9,B10,MEM")
    parser.add_argument("--results", default=None,
                        help="results directory (default bench/results, or bench/results/quick)")
    parser.add_argument("--work", default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--b4-seconds", type=float, default=None,
                        help="B4 run length (full default 600, quick 15)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="length of each B1 step / B2, B3 level (full default 30) / B0 step (20)")
    parser.add_argument("--b0-streams", type=int, default=None,
                        help="B0's concurrent streams (default 1000; a smaller CI smoke run: 200)")
    parser.add_argument("--b8-calls", type=int, default=None,
                        help="B10's concurrent WebRTC (and plain) calls (full default 100, quick 20)")
    parser.add_argument("--b8-seconds", type=float, default=None,
                        help="B10's measured window per phase (full default 30, quick 10)")
    parser.add_argument("--b3s-pairs", type=int, default=None,
                        help="B3S's bridged calls per level (full default 100, quick 10)")
    parser.add_argument("--b9-calls", type=int, default=None,
                        help="B9's concurrent speech gathers (full default 50, quick 10)")
    parser.add_argument("--b0-seconds", type=float, default=None,
                        help="B0's measured window (full default 60, quick 10)")
    args = parser.parse_args(argv)
    mode_name = "full" if args.full else "quick"
    only = {x.strip().upper() for x in args.only.split(",") if x.strip()}
    unknown = only - {b for b, _, _ in BENCHMARKS}
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    results_dir = Path(args.results) if args.results else (
        common.RESULTS if mode_name == "full" else common.RESULTS / "quick")
    common.RESULTS = results_dir
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="ivr-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    for tool in ("sipp", "dumpcap"):
        common.require(tool)
    context: dict = {"b4_seconds": args.b4_seconds, "seconds": args.seconds,
                     "b0_streams": args.b0_streams, "b0_seconds": args.b0_seconds,
                     "b8_calls": args.b8_calls, "b8_seconds": args.b8_seconds,
                     "b9_calls": args.b9_calls, "b3s_pairs": args.b3s_pairs}
    results, failed = {}, []
    started_all = time.monotonic()
    print(f"ivr bench, {mode_name} mode, work dir {work}", flush=True)
    for bench, module, name in BENCHMARKS:
        if only and bench not in only:
            continue
        print(f"{bench} ({module})", flush=True)
        started = time.monotonic()
        try:
            mod = importlib.import_module(f"bench.{module}")
            out = mod.run(work, mode_name, context)
        except Exception:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            failed.append(bench)
            continue
        path = common.write_result(name, mode_name, out["figures"], out["targets"], started)
        results[bench] = out
        print(f"  -> {path.relative_to(common.ROOT) if path.is_relative_to(common.ROOT) else path} "
              f"({time.monotonic() - started:.0f} s)", flush=True)
    text, rows = table(results)
    print("\n" + text)
    summary = {"mode": mode_name, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "elapsed_s": round(time.monotonic() - started_all, 1), "machine": common.machine(),
               "rows": rows, "failed": failed}
    (results_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    print(f"\n{len(results)} benchmark(s) in {summary['elapsed_s']:.0f} s"
          + (f"; FAILED to run: {', '.join(failed)}" if failed else ""))
    if not args.work and not failed:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
