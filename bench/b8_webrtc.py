"""B8: WebRTC echo calls against plain RTP echo calls, in the same run, on the same server.

``ivr serve`` (core 0) answers the echo line (+15550000001, dialplans/echo.yaml's number;
the bench's copy leaves out the spoken prompts so that setup ends at the first echoed
packet, not after a sentence of TTS).  The load generator (``bench/webrtc_load.py``, its own
process on core 1) places N calls over SIP over WebSocket (``ws://.../sip``, one connection
per call as browser tabs do): in a **webrtc** phase each call does ICE (controlling, with
USE-CANDIDATE), the DTLS client handshake and 20 ms PCMU in SRTP; in a **plain** phase the
same client offers ``RTP/AVP`` and sends plain RTP.  Each echoed packet is decrypted and
compared byte for byte with what was sent.

Server CPU is read from /proc over the window in which every call of the phase is up
(echo received), so it is the steady cost of a call's media: ms of CPU per second of call.
Phases alternate plain, webrtc (full mode: twice), and the headline is the mean of the
rounds.  Also: the server's CPU from the first INVITE until every call is up, per call
(signalling, ICE, the DTLS handshake: the set-up cost), setup times, packet loss, failed
calls, and the generator's own CPU (a saturated generator would understate the load).

``python -m bench.b8_webrtc [CALLS] [SECONDS]`` runs it alone (writes bench/results/).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from bench import common

TARGET = "+15550000001"
TARGETS = {"failed_calls": "0", "packet_loss_percent": "0", "mismatched_packets": "0",
           "cpu_ratio_webrtc_to_plain": "-"}

ECHO_PLAN = """\
# B8: the bundled echo line (dialplans/echo.yaml, +1 555 000 0001) without its spoken
# prompts: the call is answered and echoed at once.
settings:
  default_region: US
  language: en-us
routes:
  - name: echo
    flow: echo_test
  - number: "+15550000001"
    flow: echo_test
flows:
  echo_test:
    - answer
    - echo: 600
    - hangup
"""

CONFIG = """\
# B8: the generator's calls all come from 127.0.0.1 as anonymous browser callers
# (SIP over WebSocket): the per-visitor limits are raised so that they measure the server.
realm: ivr.test
domains: [ivr.test]
algorithms: [SHA-256, MD5]
require_trusted_sources: false
security:
  max_failures: 600000
  failure_window: 60
  ban_time: 1
webrtc:
  targets: ["+15550000001", echo]
  calls_per_minute: 10000
  max_concurrent_per_visitor: 1000
"""


def start_server(work: Path, rtp_ports: int = 2000) -> common.Server:
    """``ivr serve`` on core 0 with the echo plan and B8's config; waits for "server ready"."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "dialplans").mkdir(exist_ok=True)
    (work / "dialplans" / "echo.yaml").write_text(ECHO_PLAN)
    (work / "config").mkdir(exist_ok=True)
    (work / "config" / "extensions.yaml").write_text(CONFIG)
    sip_port, http_port, rtp = common.free_port(), common.free_port(), common.free_range(rtp_ports)
    log_path = work / "server.log"
    cmd = common.pinned(common.SERVER_CORE, [
        sys.executable, "-m", "ivr.cli", "serve", "--sip", f"127.0.0.1:{sip_port}",
        "--http", f"127.0.0.1:{http_port}", "--rtp-ports", f"{rtp[0]}-{rtp[1]}",
        "--dialplans", str(work / "dialplans"), "--prompts", str(common.ROOT / "prompts"),
        "--data", str(work / "data"), "--config", str(work / "config"),
        "--sip-tcp-max-per-address", "0", "--media-timeout", "600", "--drain-timeout", "5"])
    env = {**__import__("os").environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, cwd=common.ROOT,
                                env=env)
    server = common.Server(proc, sip_port, http_port, rtp, work, log_path)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if "server ready" in server.log():
            return server
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    server.stop()
    raise common.BenchError(f"ivr serve did not start:\n{server.log()[-3000:]}")


def run_phase(server: common.Server, work: Path, mode: str, calls: int, seconds: float,
              rate: float, tag: str) -> dict:
    """One phase: N calls of ``mode`` from the generator on core 1; the server's CPU over
    the ramp and over the window with every call up."""
    out_path = work / f"b8-{tag}.jsonl"
    cmd = common.pinned(common.DRIVER_CORE, [
        sys.executable, "-m", "bench.webrtc_load", f"127.0.0.1:{server.http_port}", TARGET,
        "--calls", str(calls), "--seconds", str(seconds), "--rate", str(rate), "--mode", mode])
    t0, c0 = time.monotonic(), common.tree_cpu_seconds(server.pid)
    proc = subprocess.Popen(cmd, cwd=common.ROOT, stdout=subprocess.PIPE,
                            stderr=open(work / f"b8-{tag}.err", "wb"), text=True)
    marks: dict = {}
    result = None
    with open(out_path, "w") as log:
        for line in proc.stdout:
            log.write(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            name = event.get("event")
            if name in ("all_up", "media_end"):
                marks[name] = (time.monotonic(), common.tree_cpu_seconds(server.pid))
            elif name == "result":
                result = event
    rc = proc.wait(60)
    if result is None or "all_up" not in marks or "media_end" not in marks:
        err = (work / f"b8-{tag}.err").read_text(errors="replace")[-2000:]
        raise common.BenchError(f"B8 generator ({mode}) ended without a result (rc {rc}):\n{err}")
    (ta, ca), (tb, cb) = marks["all_up"], marks["media_end"]
    per_call = result["calls"]
    up = [c for c in per_call if c["invite_to_echo_ms"] is not None]
    sent = sum(c["window_sent"] for c in per_call)
    echoed = sum(c["window_echoed"] for c in per_call)
    all_sent = sum(c["sent"] for c in per_call)
    all_echoed = sum(c["echoed"] for c in per_call)
    window = tb - ta
    steady_cpu = cb - ca
    figures = {
        "mode": mode, "calls": calls, "calls_up": len(up),
        "failed_calls": sum(1 for c in per_call if not c["ok"]),
        "errors": sorted({c["error"] for c in per_call if c["error"]})[:10],
        "window_s": round(window, 3),
        "server_cpu_s": round(steady_cpu, 3),
        "server_cpu_percent": round(100 * steady_cpu / window, 2) if window > 0 else None,
        "server_cpu_ms_per_call_second": (round(1000 * steady_cpu / (window * len(up)), 4)
                                          if window > 0 and up else None),
        # the same, per packet echoed in the window (in and out of the server, decrypted and
        # encrypted for WebRTC): independent of the rate the generator managed to send
        "server_cpu_us_per_echoed_packet": round(1e6 * steady_cpu / echoed, 2) if echoed else None,
        "packets_per_call_second": round(sent / (window * len(up)), 2) if window > 0 and up else None,
        "setup_server_cpu_ms_per_call": round(1000 * (ca - c0) / calls, 2),
        "setup_wall_s": round(ta - t0, 3),
        "invite_to_200_ms": _pcts([c["invite_to_200_ms"] for c in per_call]),
        "invite_to_first_echo_ms": _pcts([c["invite_to_echo_ms"] for c in up]),
        # loss over the window with every call up; outside it, packets that arrived before
        # the echo started or were still in flight at the BYE
        "packets_sent": sent, "packets_echoed": echoed,
        "packet_loss_percent": round(100 * (sent - echoed) / sent, 4) if sent else None,
        "packets_not_echoed_outside_window": (all_sent - all_echoed) - (sent - echoed),
        "setup_ms_each": [c["invite_to_echo_ms"] for c in up],
        "mismatched_packets": sum(c["mismatches"] for c in per_call),
        "undecryptable_packets": sum(c["undecryptable"] for c in per_call),
        "duplicate_packets": sum(c["duplicates"] for c in per_call),
        "silence_packets": sum(c["silence"] for c in per_call),
        "generator_cpu_percent": result["generator_cpu_percent"],
        "generator_late_ticks": result["generator_late_ticks"],
    }
    if mode == "webrtc":
        figures["invite_to_ice_ms"] = _pcts([c["invite_to_ice_ms"] for c in per_call])
        figures["invite_to_dtls_ms"] = _pcts([c["invite_to_dtls_ms"] for c in per_call])
        figures["consent_checks_answered"] = sum(c["consent_checks_answered"] for c in per_call)
    return figures


def _pcts(values) -> dict:
    vals = [v for v in values if v is not None]
    return {"p50": common.percentile(vals, 50), "p99": common.percentile(vals, 99),
            "max": round(max(vals), 3) if vals else None, "n": len(vals)}


def _mean(values):
    vals = [v for v in values if v is not None]
    return round(sum(vals) / len(vals), 4) if vals else None


def measure(work: Path, calls: int, seconds: float, rounds: int, rate: float = 20.0) -> dict:
    server = start_server(work / "b8")
    phases: list[dict] = []
    try:
        time.sleep(1.0)
        idle = common.CpuWindow(server.pid).start()
        time.sleep(2.0)
        idle_cpu = idle.stop()
        for r in range(rounds):
            for mode in ("plain", "webrtc"):
                print(f"  B8 round {r + 1}: {calls} {mode} calls x {seconds:g} s", flush=True)
                phase = run_phase(server, work / "b8", mode, calls, seconds, rate, f"{mode}-{r}")
                phase["round"] = r + 1
                phases.append(phase)
                print(f"    {phase['calls_up']} up, {phase['failed_calls']} failed, "
                      f"{phase['server_cpu_ms_per_call_second']} ms CPU per call-second, "
                      f"{phase['server_cpu_us_per_echoed_packet']} us per echoed packet, "
                      f"{phase['packets_per_call_second']} packets/s per call, "
                      f"loss {phase['packet_loss_percent']}%, first echo p50 "
                      f"{phase['invite_to_first_echo_ms']['p50']} ms", flush=True)
                time.sleep(1.5)  # the BYEs' CDRs written, the ports back
        rss = common.rss_bytes(server.pid)
    finally:
        server.stop()
    by = {m: [p for p in phases if p["mode"] == m] for m in ("plain", "webrtc")}
    plain_ms = _mean([p["server_cpu_ms_per_call_second"] for p in by["plain"]])
    webrtc_ms = _mean([p["server_cpu_ms_per_call_second"] for p in by["webrtc"]])
    plain_us = _mean([p["server_cpu_us_per_echoed_packet"] for p in by["plain"]])
    webrtc_us = _mean([p["server_cpu_us_per_echoed_packet"] for p in by["webrtc"]])
    return {
        "calls": calls, "seconds": seconds, "rounds": rounds, "setup_rate_cps": rate,
        "server_cpu_ms_per_call_second_webrtc": webrtc_ms,
        "server_cpu_ms_per_call_second_plain": plain_ms,
        "cpu_ratio_webrtc_to_plain": round(webrtc_ms / plain_ms, 2) if webrtc_ms and plain_ms else None,
        "server_cpu_us_per_echoed_packet_webrtc": webrtc_us,
        "server_cpu_us_per_echoed_packet_plain": plain_us,
        "cpu_per_packet_ratio_webrtc_to_plain": (round(webrtc_us / plain_us, 2)
                                                 if webrtc_us and plain_us else None),
        "setup_server_cpu_ms_per_call_webrtc": _mean(
            [p["setup_server_cpu_ms_per_call"] for p in by["webrtc"]]),
        "setup_server_cpu_ms_per_call_plain": _mean(
            [p["setup_server_cpu_ms_per_call"] for p in by["plain"]]),
        # INVITE -> first echoed packet, every call of every round
        "setup_ms_webrtc": _pcts([v for p in by["webrtc"] for v in p["setup_ms_each"]]),
        "setup_ms_plain": _pcts([v for p in by["plain"] for v in p["setup_ms_each"]]),
        "packet_loss_percent_webrtc": max(p["packet_loss_percent"] or 0 for p in by["webrtc"]),
        "packet_loss_percent_plain": max(p["packet_loss_percent"] or 0 for p in by["plain"]),
        "failed_calls_webrtc": sum(p["failed_calls"] for p in by["webrtc"]),
        "failed_calls_plain": sum(p["failed_calls"] for p in by["plain"]),
        "mismatched_packets": sum(p["mismatched_packets"] for p in phases),
        "server_idle_cpu_percent": idle_cpu["cpu_percent"],
        "server_rss_mb_after": round(rss / 2**20, 1),
        "phases": phases,
    }


def run(work, mode: str, context: dict) -> dict:
    seconds = context.get("b8_seconds") or (10.0 if mode == "quick" else 30.0)
    calls = context.get("b8_calls") or (20 if mode == "quick" else 100)
    figures = measure(Path(work), calls, seconds, rounds=1 if mode == "quick" else 2)
    print(f"  B8 {calls} calls: {figures['server_cpu_ms_per_call_second_webrtc']} ms CPU per "
          f"call-second WebRTC, {figures['server_cpu_ms_per_call_second_plain']} plain "
          f"(x{figures['cpu_ratio_webrtc_to_plain']}); failed {figures['failed_calls_webrtc']} / "
          f"{figures['failed_calls_plain']}", flush=True)
    return {"targets": TARGETS, "figures": figures}


def main(argv: list[str]) -> int:
    import tempfile
    calls = int(argv[0]) if argv else 20
    seconds = float(argv[1]) if len(argv) > 1 else 10.0
    started = time.monotonic()
    figures = measure(Path(tempfile.mkdtemp(prefix="ivr-b8-")), calls, seconds, rounds=1)
    path = common.write_result("b8_webrtc", "alone", figures, TARGETS, started)
    print(json.dumps({k: v for k, v in figures.items() if k != "phases"}, indent=2))
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
