"""Tone WAVs for the softphone interop tests, and the checks that find them in a recording."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.interop.peers import read_wav, rms, write_wav


def tone_wav(path: Path, freq: float, seconds: float = 60, rate: int = 8000) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    return write_wav(path, (0.3 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16), rate)


def peak_hz(samples: np.ndarray, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(spectrum.argmax())])


def tail(path: Path, seconds: float) -> tuple[np.ndarray, int]:
    samples, rate = read_wav(path)
    return samples[-int(seconds * rate):], rate


def assert_tone(path: Path, freq: float, seconds: float = 1.5, min_rms: float = 1000) -> None:
    """The last ``seconds`` of the recording at ``path`` are a loud tone of ``freq`` Hz."""
    samples, rate = tail(path, seconds)
    assert len(samples) >= int(seconds * rate * 0.9), f"{path}: only {len(samples) / rate:.2f} s"
    level, peak = rms(samples), peak_hz(samples, rate)
    assert level >= min_rms and abs(peak - freq) < 15, (
        f"{path}: expected a {freq} Hz tone, heard {peak:.0f} Hz at rms {level:.0f}")
