"""B6 TTS: the real-time factor of rendering (espeak-ng in this process, as the server's worker
does it), and the time from a ``say`` verb starting (its path-log line) to its first audio
packet on the wire, for a prompt cached when the plan loaded and for one rendered on demand.
Calls run one at a time so each say maps to the one live stream; the leading silent frames
of the rendered audio (espeak starts with ~20 ms of zeros) are subtracted."""
from __future__ import annotations

import calendar
import re
import time
from pathlib import Path

import numpy as np

from . import common, rtp_probe
from .b2_ivr import server_wait_prerender

TARGETS = {"first_packet_cached_ms": "<= 20", "first_packet_uncached_ms": "<= 100"}
SENTENCES = ["Welcome to the benchmark line.",
             "Press one for sales, two for support, or stay on the line for an operator.",
             "Your call is important to us. All our agents are busy at the moment, please hold."]
_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z \[ivr\.call\] call (\S+) "
                   r"(step flow='tts' verb='say'|say verb='say' line=\d+ text=)(.*)$")
_SILENT = 0xFFFFFFFFFFFFFFFF  # 8 bytes of u-law 0xFF: the server's comfort silence


def real_time_factor(repeat: int) -> dict:
    from ivr.media.tts import EspeakRenderer
    renderer = EspeakRenderer()
    renderer.render("warm up", language="en-us")
    rows = []
    for text in SENTENCES:
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            audio = renderer.render(text, language="en-us")
            times.append(time.perf_counter() - t)
        seconds = len(audio) / 8000
        rows.append({"text_chars": len(text), "audio_s": round(seconds, 3),
                     "render_ms": round(1000 * float(np.median(times)), 2),
                     "rtf": round(float(np.median(times)) / seconds, 5)})
    return {"sentences": rows, "rtf_max": max(r["rtf"] for r in rows)}, renderer


def leading_silent_frames(renderer, text: str) -> int:
    from ivr.media import g711
    u = g711.ulaw_encode(renderer.render(text, language="en-us")).tobytes()
    for i in range(len(u) // 160):
        if u[i * 160:i * 160 + 8] != b"\xff" * 8:
            return i
    return 0


def _stamp(date: str, millis: str) -> float:
    return calendar.timegm(time.strptime(date, "%Y-%m-%dT%H:%M:%S")) + int(millis) / 1000


def run(work: Path, mode: str, context: dict) -> dict:
    quick = mode == "quick"
    rtf, renderer = real_time_factor(3 if quick else 20)
    calls = 2 if quick else 20
    server = common.start_server(work / "b6-server")
    try:
        server_wait_prerender(server)
        lo, hi = server.rtp_range
        cap = common.Capture(work / "b6.pcap", f"udp src portrange {lo}-{hi}")
        run_ = common.sipp(work, server.sip, common.SCENARIOS / "uac_tts.xml", tag="b6", service="tts",
                           calls=calls, rate=10, limit=1, timeout=calls * 4 + 30)
        time.sleep(0.3)
        cap.stop()
        log = server.log()
    finally:
        server.stop()
    packets = rtp_probe.read_pcap(work / "b6.pcap")
    audio = packets.where((packets.key != np.uint64(_SILENT)) & (packets.pt < 96))
    starts: dict[str, list] = {}
    texts: dict[str, list] = {}
    for line in log.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        if m.group(4).startswith("step"):
            starts.setdefault(m.group(3), []).append(_stamp(m.group(1), m.group(2)))
        else:
            texts.setdefault(m.group(3), []).append(m.group(5).strip().strip("'\""))
    cached, uncached = [], []
    for call_id, stamps in starts.items():
        for i, (t0, text) in enumerate(zip(stamps, texts.get(call_id, []))):
            after = audio.t[audio.t >= t0]
            if not after.size:
                continue
            lead = leading_silent_frames(renderer, text) * 20.0
            delay = max(0.0, (after.min() - t0) * 1000.0 - lead)
            (cached if i == 0 else uncached).append(round(delay, 2))
    fig = {"real_time_factor": rtf, "calls": calls, "successful": run_.stat("SuccessfulCall(C)"),
           "first_packet_cached_ms": _stats(cached), "first_packet_uncached_ms": _stats(uncached),
           "note": "from the say verb's log line (ms resolution) to the first non-silent packet, "
                   "minus the prompt's own leading silent frames"}
    print(f"  B6 RTF {rtf['rtf_max']}; first packet cached {fig['first_packet_cached_ms']} ms, "
          f"uncached {fig['first_packet_uncached_ms']} ms", flush=True)
    return {"targets": TARGETS, "figures": fig}


def _stats(values: list) -> dict:
    if not values:
        return {"n": 0}
    arr = np.array(values)
    return {"n": int(arr.size), "p50": round(float(np.median(arr)), 2),
            "p99": round(float(np.percentile(arr, 99)), 2), "max": round(float(arr.max()), 2)}
