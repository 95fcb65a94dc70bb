"""Spoken commands made at test time: espeak-ng in several voices and speeds, band-limited
to telephone audio (300-3400 Hz) at 8 kHz, with white noise at a given SNR; plus silence
and coughs (noise bursts) that must not be heard as words.  Nothing is committed: the
audio is rendered on demand and kept in /data/speech-corpus (git-ignored)."""
from __future__ import annotations

import hashlib
import io
import os
import subprocess
import wave
from pathlib import Path

import numpy as np
import soxr

CACHE = Path(__file__).resolve().parents[2] / "data" / "speech-corpus"
VOICES = ("en-us", "en-us+m3", "en-us+f3", "en-us+f2", "en-us+m1", "en-us+f4")
SPEEDS = (140, 175)
COMMANDS = ("sales", "support", "operator")


def band_limit(x: np.ndarray, low: float = 300.0, high: float = 3400.0, rate: int = 8000):
    spectrum = np.fft.rfft(x.astype(np.float64))
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    spectrum[(freqs < low) | (freqs > high)] = 0
    return np.fft.irfft(spectrum, len(x))


def spoken(text: str, voice: str = "en-us", speed: int = 160) -> np.ndarray:
    """int16 8 kHz telephone-band rendering of ``text`` (cached), peak at -6 dBFS."""
    key = hashlib.sha1(f"{text}|{voice}|{speed}".encode()).hexdigest()[:16]
    path = CACHE / f"{key}.npy"
    if path.exists():
        return np.load(path)
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
                         capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(wav)) as w:
        audio = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        rate = w.getframerate()
    x = band_limit(soxr.resample(audio.astype(np.float64), rate, 8000))
    x = x / (np.max(np.abs(x)) or 1) * 16384
    out = x.astype(np.int16)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


def padded(x: np.ndarray, before: float = 0.5, after: float = 1.5) -> np.ndarray:
    return np.concatenate([np.zeros(int(before * 8000), np.int16), x,
                           np.zeros(int(after * 8000), np.int16)])


def with_noise(x: np.ndarray, snr_db: float, speech: np.ndarray | None = None,
               seed: int = 0) -> np.ndarray:
    """``x`` plus white telephone-band noise ``snr_db`` below the speech's power (the power
    of ``speech``, default ``x``'s non-silent part)."""
    ref = (speech if speech is not None else x).astype(np.float64)
    ref = ref[np.abs(ref) > 0] if np.any(ref) else ref
    power = float(np.mean(ref ** 2)) if len(ref) else 1.0
    noise = band_limit(np.random.default_rng(seed).standard_normal(len(x)))
    noise *= np.sqrt(power / 10 ** (snr_db / 10) / np.mean(noise ** 2))
    return np.clip(x + noise, -32768, 32767).astype(np.int16)


def cough(seed: int = 0) -> np.ndarray:
    """A cough-like burst: 250 ms of band-limited noise with a fast attack and decay."""
    rng = np.random.default_rng(seed)
    n = 2000
    env = np.exp(-np.arange(n) / 500.0) * (1 - np.exp(-np.arange(n) / 40.0))
    burst = band_limit(rng.standard_normal(n)) * env
    return (burst / np.max(np.abs(burst)) * 12000).astype(np.int16)


def generated_set(snr_db: float, commands=COMMANDS, voices=VOICES, speeds=SPEEDS):
    """[(expected text, int16 audio with 0.5 s before and 1.5 s after)]"""
    out = []
    for i, (voice, speed, text) in enumerate(
            (v, s, t) for v in voices for s in speeds for t in commands):
        clean = spoken(text, voice, speed)
        out.append((text, with_noise(padded(clean), snr_db, clean, seed=i)))
    return out
