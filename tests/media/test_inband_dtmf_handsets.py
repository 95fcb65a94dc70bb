"""In-band DTMF from real handsets, and talk-off over the server's own speech.

Handsets send the high group 2-8 dB stronger than the low group (normal twist, to make up
for the line's loss of high frequencies); some lines and gateways tilt it the other way.
Every digit with a twist of -8..+8 dB at realistic levels must be detected exactly once
through a G.711 u-law round trip, while more than ten minutes of the server's own TTS
speech (espeak-ng via pyttsx3, rendered once per session), music-like signals and noise give
no digit at all.
"""
from __future__ import annotations

import numpy as np
import pytest

from ivr.media import inband_dtmf
from ivr.media.inband_dtmf import DIGITS, LOW_FREQS, HIGH_FREQS, DBM0_PEAK, synthesize_dtmf

from . import tts_corpus
from .test_inband_dtmf import FS, detect_many, music, padded

TWISTS_DB = list(range(-8, 9))  # high group minus low group: positive = normal twist


def handset_digit(digit: str, high_minus_low_db: float, stronger_dbm0: float, rng, duration_ms=None):
    """A digit whose stronger tone is at ``stronger_dbm0`` and whose high group is
    ``high_minus_low_db`` above the low group, with a handset's imprecision: random phases,
    frequencies off by up to 1.5 %, 40-120 ms long."""
    low = stronger_dbm0 - max(high_minus_low_db, 0.0)
    return synthesize_dtmf(
        digit, duration_ms or float(rng.integers(40, 121)), level_dbm0=low, twist_db=-high_minus_low_db,
        freq_offsets=tuple(rng.uniform(-0.015, 0.015, 2)), phases=tuple(rng.uniform(0, 2 * np.pi, 2)))


@pytest.mark.parametrize("stronger_dbm0", [-3.0, -10.0, -20.0, -28.0])
def test_every_digit_with_8_db_twist_either_way_is_detected_once(stronger_dbm0):
    rng = np.random.default_rng(int(-stronger_dbm0))
    signals, expected = [], []
    for twist in TWISTS_DB:
        for i, digit in enumerate(DIGITS):
            tone = handset_digit(digit, twist, stronger_dbm0, rng)
            # the digit twice, with a handset's 60 ms pause: two digits, each found once
            pair = np.concatenate([tone, np.zeros(480), tone])
            signals.append(padded(pair, int(rng.integers(0, 400))))
            expected.append(digit * 2)
    found = detect_many(signals, ulaw=True)
    wrong = [(t, e, f) for t, (e, f) in zip(np.repeat(TWISTS_DB, 16), zip(expected, found)) if e != f]
    assert wrong == []


@pytest.mark.parametrize("twist", [-8.0, 8.0])
def test_a_ten_digit_number_with_twist_comes_through_whole(twist):
    # the report: a PCMU-only caller keyed ten digits and four came through
    rng = np.random.default_rng(10)
    number = "4155550142"
    parts = []
    for digit in number:
        parts += [handset_digit(digit, twist, -8.0, rng, duration_ms=float(rng.integers(60, 110))),
                  np.zeros(int(rng.integers(480, 1200)))]
    signal = np.concatenate(parts)
    assert detect_many([signal, padded(signal, 53)], ulaw=True) == [number, number]


@pytest.mark.parametrize("twist", [-12.0, -10.0, 10.0, 12.0])
def test_twist_beyond_the_limit_is_rejected_either_way(twist):
    rng = np.random.default_rng(3)
    signals = [padded(handset_digit(d, twist, -6.0, rng, duration_ms=80), 100 + 17 * i)
               for i, d in enumerate(DIGITS)]
    assert detect_many(signals) == [""] * 16


# --- talk-off: the server's own speech, music-like signals, noise --------------------------------


@pytest.fixture(scope="session")
def server_speech(tmp_path_factory) -> np.ndarray:
    """Over ten minutes of the server's TTS (many voices, rates, languages; sentences, numbers,
    names), normalised to a peak of 1.0; rendered once per test session."""
    audio = tts_corpus.load(tmp_path_factory.mktemp("tts-corpus")).astype(np.float64)
    return audio / np.abs(audio).max()


def test_the_speech_corpus_is_over_ten_minutes_of_speech(server_speech):
    frames = server_speech[: server_speech.size // 160 * 160].reshape(-1, 160)
    voiced = np.sqrt((frames**2).mean(axis=1)) > 0.01  # frames that carry speech
    assert voiced.sum() * 160 / FS >= 600.0


@pytest.mark.parametrize("peak", [32000.0, 8000.0, 1500.0])
def test_server_speech_gives_no_digit(server_speech, peak):
    parts = np.array_split(server_speech * peak, 16)  # 16 channels of the bank side by side
    assert detect_many(parts, ulaw=True) == [""] * 16


def not_dtmf_pairs(seed: int) -> np.ndarray:
    """Two-tone signals that are not digits: two tones of one group, a DTMF tone with a
    non-DTMF partner, pairs 4-8 % off the DTMF grid, single DTMF tones, a DTMF pair with its
    tones 12 dB apart or more, and each at several levels; 120 ms each with 60 ms gaps."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.12 * FS)) / FS
    gap = np.zeros(480)
    parts = []

    def pair(f1, f2, a1, a2):
        parts.append(a1 * np.sin(2 * np.pi * f1 * t + rng.uniform(0, 6.3))
                     + a2 * np.sin(2 * np.pi * f2 * t + rng.uniform(0, 6.3)))
        parts.append(gap)

    for level in (-5.0, -20.0):
        a = DBM0_PEAK * 10 ** (level / 20)
        for group in (LOW_FREQS, HIGH_FREQS):
            for i, f1 in enumerate(group):
                for f2 in group[i + 1:]:
                    pair(f1, f2, a, a)
                pair(f1, f1 * 1.25, a, a)
                pair(f1, 0.0, a, 0.0)
        for lo in LOW_FREQS:
            for hi in HIGH_FREQS:
                for off in (0.04, -0.05, 0.08):
                    pair(lo * (1 + off), hi * (1 - off), a, a)
                    pair(lo, hi * (1 + off), a, a)
                pair(lo, hi, a, a * 10 ** (-12 / 20))
                pair(lo, hi, a * 10 ** (-12 / 20), a)
                pair(lo, 400.0 + rng.uniform(0, 100), a, a)
                pair(2100.0, hi, a, a)
    return np.concatenate(parts)


def noises(seed: int, seconds: float) -> np.ndarray:
    """White, pink and brown noise, and bursts of noise, at several levels."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    white = rng.normal(0, 1, n)
    spectrum = np.fft.rfft(rng.normal(0, 1, n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / FS), 1.0)
    pink = np.fft.irfft(spectrum / np.sqrt(f), n)
    brown = np.fft.irfft(spectrum / f, n)
    bursts = rng.normal(0, 1, n) * (np.sin(2 * np.pi * 3.0 * np.arange(n) / FS) > 0.6)
    out = []
    for x in (white, pink, brown, bursts):
        x = x / np.sqrt(np.mean(x**2))
        for rms in (30.0, 1000.0, 8000.0):
            out.append(x[: n // 3] * rms if rms < 8000 else np.clip(x[: n // 3] * rms, -32000, 32000))
    return np.concatenate(out)


def test_music_tone_pairs_and_noise_give_no_digit():
    signals = [music(seed=7) * 20000.0, music(seed=8) * 3000.0, not_dtmf_pairs(1), noises(2, 60.0)]
    assert sum(s.size for s in signals) / FS >= 240.0
    parts = [p for s in signals for p in np.array_split(s, 4)]
    assert detect_many(parts, ulaw=True) == [""] * len(parts)


def test_digits_between_server_prompts_are_found(server_speech):
    rng = np.random.default_rng(4)
    speech = server_speech * 12000.0
    parts, expected = [], ""
    for k, digit in enumerate("0123456789*#"):
        parts += [speech[k * 4 * FS:(k * 4 + 3) * FS], np.zeros(400),
                  handset_digit(digit, 6.0 if k % 2 else -6.0, -10.0, rng, duration_ms=70), np.zeros(400)]
        expected += digit
    assert detect_many([np.concatenate(parts)], ulaw=True) == [expected]


def test_the_documented_limits_are_the_module_constants():
    doc = inband_dtmf.__doc__
    assert inband_dtmf.MAX_NORMAL_TWIST_DB == inband_dtmf.MAX_REVERSE_TWIST_DB == 9.0
    for text in ("8 dB of normal twist", "8 dB of reverse twist", "-42 dBm0", "40 ms", "23 ms", "1.5 %",
                 "3.5 %"):
        assert text in doc, text
