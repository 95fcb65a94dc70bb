"""Benchmark and Q.24 accuracy summary of the in-band DTMF detector.

    .venv/bin/python bench/bench_inband_dtmf.py [--channels 1000] [--frames 500]

Times InbandDtmfBank.process over CHANNELS channels x FRAMES 20 ms frames (noise, speech-level
noise bursts and DTMF digits, every channel at its own phase) and prints microseconds per 20 ms
frame per channel (target <= 5 us). Then measures, per Q.24 condition, the percentage of trials
handled correctly (detected where the digit must be detected, silent where it must be rejected),
using the same signal generators as tests/media/test_inband_dtmf.py. Writes
bench/results/inband_dtmf.json.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time

# One BLAS thread: the figure is per core (the media tick runs on one thread), and a second
# BLAS thread on a shared 2-core box mostly measures contention. Override by setting it yourself.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ivr.media.inband_dtmf import DIGITS, FRAME, InbandDtmfBank, synthesize_dtmf  # noqa: E402
from tests.media.test_inband_dtmf import (  # noqa: E402
    FS, SPEECH_TEXT, SPEECH_VOICES, detect_many, espeak, music, noisy_trials, padded,
)

TRIALS = 160  # 10 per digit


def cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def bench_speed(channels: int, frames: int, all_tones: bool = False, seed: int = 0) -> dict:
    """Per-call timings of process() over all channels; all_tones puts a digit on every channel
    in every frame (worst case: every window reaches the full classification)."""
    rng = np.random.default_rng(seed)
    loop = 100  # each channel plays its own 2 s loop: noise plus an 80 ms digit somewhere in it
    audio = rng.normal(0, 200.0, (channels, loop * FRAME))
    for ch in range(channels):
        phases = tuple(rng.uniform(0, 6.3, 2))
        if all_tones:
            audio[ch] += synthesize_dtmf(DIGITS[ch % 16], loop * 20, level_dbm0=-15, phases=phases)
        else:
            start = int(rng.integers(0, (loop - 10) * FRAME))
            tone = synthesize_dtmf(DIGITS[ch % 16], 80, level_dbm0=-15, phases=phases)
            audio[ch, start : start + tone.size] += tone
    audio = np.clip(audio, -32768, 32767).astype(np.int16).reshape(channels, loop, FRAME)
    audio = np.ascontiguousarray(audio.transpose(1, 0, 2))  # (frame, channel, sample)
    bank = InbandDtmfBank(channels)
    slots = np.array([bank.open() for _ in range(channels)])
    for i in range(10):  # warm up
        bank.process(audio[i], slots)
    times = np.empty(frames)
    digits = 0
    for i in range(frames):
        t0 = time.perf_counter()
        digits += len(bank.process(audio[i % loop], slots))
        times[i] = time.perf_counter() - t0
    per = times / channels * 1e6
    return {"mean_us": round(float(per.mean()), 3), "median_us": round(float(np.median(per)), 3),
            "p99_us": round(float(np.percentile(per, 99)), 3), "digits": digits}


def trials(seed: int, duration_ms: float = 40.0, **kwargs) -> tuple[list[np.ndarray], list[str]]:
    rng = np.random.default_rng(seed)
    signals, expected = [], []
    for i in range(TRIALS):
        d = DIGITS[i % 16]
        tone = synthesize_dtmf(d, duration_ms, phases=tuple(rng.uniform(0, 2 * np.pi, 2)), **kwargs)
        signals.append(padded(tone, int(rng.integers(160, 320))))
        expected.append(d)
    return signals, expected


def score(signals, expected, detect: bool, ulaw: bool = False) -> float:
    found = detect_many(signals, ulaw)
    good = sum((f == e) if detect else (f == "") for f, e in zip(found, expected))
    return round(100.0 * good / len(expected), 2)


def accuracy() -> dict:
    out: dict[str, dict] = {}

    def cond(name, detect, signals_expected, ulaw=False):
        signals, expected = signals_expected
        out[name] = {"expect": "detect" if detect else "reject", "trials": len(expected),
                     "percent_correct": score(signals, expected, detect, ulaw)}

    cond("nominal, 40 ms", True, trials(1))
    cond("nominal, 40 ms, u-law", True, trials(1), ulaw=True)
    for lo in (0.015, -0.015):
        for hi in (0.015, -0.015):
            cond(f"freq {lo:+.1%}/{hi:+.1%}", True, trials(2, freq_offsets=(lo, hi)), ulaw=True)
    for lo in (0.035, -0.035):
        for hi in (0.035, -0.035):
            cond(f"freq {lo:+.1%}/{hi:+.1%}", False, trials(3, freq_offsets=(lo, hi)))
    cond("duration 40 ms", True, trials(4, 40.0))
    cond("duration 23 ms", False, trials(5, 23.0))
    cond("duration 20 ms", False, trials(5, 20.0))
    # the detector's limits (ivr/media/inband_dtmf.py): 8 dB either way accepted, 10 dB rejected
    for twist, detect in ((8.0, True), (-8.0, True), (10.0, False), (-10.0, False)):
        kind = "normal" if twist > 0 else "reverse"
        cond(f"twist {abs(twist):g} dB {kind}", detect, trials(6, level_dbm0=-6.0, twist_db=twist), ulaw=True)
    for level in (-3.0, -13.0, -23.0, -33.0, -38.0):
        cond(f"level {level:g} dBm0/tone", True, trials(7, level_dbm0=level), ulaw=True)
    cond("level -45 dBm0/tone", False, trials(7, level_dbm0=-45.0))
    for snr in (15.0, 12.0, 10.0):
        cond(f"white noise S/N {snr:g} dB", True, noisy_trials(snr, TRIALS, seed=8), ulaw=True)

    rng = np.random.default_rng(9)
    pairs = []
    for i in range(TRIALS):
        burst = synthesize_dtmf(DIGITS[i % 16], 40, phases=tuple(rng.uniform(0, 6.3, 2)))
        pairs.append(padded(np.concatenate([burst, np.zeros(320), burst]), int(rng.integers(0, 160))))
    cond("40 ms tone, 40 ms pause, 40 ms tone = 2 digits", True, (pairs, [d * 2 for d in DIGITS] * 10))

    speech = np.concatenate([espeak(t, *v) for v in SPEECH_VOICES for t in SPEECH_TEXT])
    speech /= np.abs(speech).max()
    minutes = speech.size / FS / 60
    for peak in (30000.0, 3000.0):
        false = "".join(detect_many(np.array_split(speech * peak, 4), ulaw=True))
        out[f"talk-off speech peak {peak:g}"] = {"minutes": round(minutes, 2), "false_digits": len(false)}
    tune = music(seed=7)
    false = "".join(detect_many(np.array_split(tune * 20000, 3), ulaw=True))
    out["talk-off music"] = {"minutes": round(tune.size / FS / 60, 2), "false_digits": len(false)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=500)
    args = parser.parse_args()

    typical = bench_speed(args.channels, args.frames)
    worst = bench_speed(args.channels, args.frames, all_tones=True)
    print(f"{typical['mean_us']:.2f} us per 20 ms frame per channel ({args.channels} channels x "
          f"{args.frames} frames; median {typical['median_us']}, p99 {typical['p99_us']})")
    print(f"{worst['mean_us']:.2f} us worst case (a digit on every channel all the time)")
    q24 = accuracy()
    for name, result in q24.items():
        print(f"  {name:48s} {result}")
    results = {
        "benchmark": "InbandDtmfBank.process",
        "channels": args.channels,
        "frames": args.frames,
        "us_per_channel_frame": typical["mean_us"],
        "target_us": 5.0,
        "typical": typical,
        "worst_case_every_channel_in_a_digit": worst,
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "q24_accuracy": q24,
    }
    out = ROOT / "bench" / "results" / "inband_dtmf.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
