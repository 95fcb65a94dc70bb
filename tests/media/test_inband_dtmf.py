"""ITU-T Q.24 conformance of the in-band DTMF detector (ivr.media.inband_dtmf).

Every condition runs on many signals at once, one per channel of an InbandDtmfBank, each channel
starting at a different sample offset (phase against the 20 ms frame grid); most also run after a
G.711 u-law round trip. Levels are per tone in dBm0 (see the module docstring for the mapping).
"""
from __future__ import annotations

import ast
import io
import pathlib
import shutil
import subprocess
import wave

import numpy as np
import pytest
import soxr

from ivr.media import inband_dtmf
from ivr.media.inband_dtmf import (
    DIGITS,
    FRAME,
    DtmfBankFull,
    InbandDtmfBank,
    InbandDtmfDetector,
    synthesize_dtmf,
)

FS = 8000


# --- helpers -------------------------------------------------------------------------------------


def ulaw_round_trip(x: np.ndarray) -> np.ndarray:
    """G.711 u-law encode then decode (a local copy so this test stands on its own)."""
    pcm = np.clip(np.round(x), -32768, 32767).astype(np.int32)
    sign = pcm < 0
    mag = np.minimum(np.abs(pcm), 32635) + 0x84
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 7
    mantissa = (mag >> (exponent + 3)) & 0x0F
    code = ~((sign.astype(np.int32) << 7) | (exponent << 4) | mantissa) & 0xFF  # the byte on the wire
    code = ~code & 0xFF
    value = ((((code & 0x0F) << 3) + 0x84) << ((code >> 4) & 0x07)) - 0x84
    return np.where(code & 0x80, -value, value).astype(np.float64)


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def detect_many(signals: list[np.ndarray], ulaw: bool = False) -> list[str]:
    """Run each signal on its own channel of one bank, all channels per frame in one call."""
    length = max(s.size for s in signals) + 800
    length += -length % FRAME
    audio = np.zeros((len(signals), length))
    for i, s in enumerate(signals):
        audio[i, : s.size] = s
    if ulaw:
        audio = ulaw_round_trip(audio)
    audio = to_int16(audio)
    bank = InbandDtmfBank(len(signals))
    slots = [bank.open() for _ in signals]
    found = [""] * len(signals)
    for start in range(0, length, FRAME):
        for slot, digit in bank.process(audio[:, start : start + FRAME], slots):
            found[slots.index(slot)] += digit
    return found


def padded(tone: np.ndarray, lead: int) -> np.ndarray:
    return np.concatenate([np.zeros(lead), tone])


def tones(duration_ms=60.0, **kwargs) -> tuple[list[np.ndarray], list[str]]:
    """All 16 digits, each at its own lead-in offset so channels sit at different phases."""
    signals = [padded(synthesize_dtmf(d, duration_ms, **kwargs), 200 + 37 * i) for i, d in enumerate(DIGITS)]
    return signals, list(DIGITS)


# --- every digit, frequency tolerance --------------------------------------------------------------


@pytest.mark.parametrize("ulaw", [False, True])
def test_every_digit_at_nominal_frequencies(ulaw):
    signals, expected = tones()
    assert detect_many(signals, ulaw) == expected


@pytest.mark.parametrize("ulaw", [False, True])
@pytest.mark.parametrize("offsets", [(0.015, 0.015), (0.015, -0.015), (-0.015, 0.015), (-0.015, -0.015)])
def test_frequency_within_1_5_percent_detected(offsets, ulaw):
    signals, expected = tones(freq_offsets=offsets)
    assert detect_many(signals, ulaw) == expected


@pytest.mark.parametrize(
    "offsets",
    [(0.035, 0.035), (0.035, -0.035), (-0.035, 0.035), (-0.035, -0.035),
     (0.035, 0.0), (-0.035, 0.0), (0.0, 0.035), (0.0, -0.035), (0.05, 0.0), (0.0, -0.06)],
)
def test_frequency_beyond_3_5_percent_rejected(offsets):
    signals, _ = tones(freq_offsets=offsets)
    assert detect_many(signals) == [""] * 16


# --- timing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ulaw", [False, True])
def test_40_ms_tone_accepted_at_every_alignment(ulaw):
    leads = range(0, 160, 3)
    signals = [padded(synthesize_dtmf(DIGITS[i % 16], 40), 160 + lead) for i, lead in enumerate(leads)]
    assert detect_many(signals, ulaw) == [DIGITS[i % 16] for i in range(len(leads))]


@pytest.mark.parametrize("duration_ms", [23.0, 20.0, 15.0, 10.0])
def test_short_tone_rejected_at_every_alignment(duration_ms):
    leads = range(0, 160, 3)
    signals = [padded(synthesize_dtmf(DIGITS[i % 16], duration_ms), 160 + lead) for i, lead in enumerate(leads)]
    assert detect_many(signals) == [""] * len(leads)


def test_40_ms_pause_separates_repeated_digits():
    signals = []
    for i, lead in enumerate(range(0, 160, 5)):
        d = DIGITS[i % 16]
        burst = synthesize_dtmf(d, 40)
        signals.append(padded(np.concatenate([burst, np.zeros(320), burst, np.zeros(320), burst]), lead))
    assert detect_many(signals, ulaw=True) == [DIGITS[i % 16] * 3 for i in range(32)]


def test_a_long_tone_is_one_digit():
    signals = [padded(synthesize_dtmf(d, 2000), 13 * i) for i, d in enumerate(DIGITS)]
    assert detect_many(signals, ulaw=True) == list(DIGITS)


def test_a_long_noisy_tone_is_one_digit():
    rng = np.random.default_rng(5)
    signals = []
    for i, d in enumerate(DIGITS):
        tone = synthesize_dtmf(d, 2000, phases=tuple(rng.uniform(0, 2 * np.pi, 2)))
        sigma = np.sqrt(np.mean(tone**2) / 10 ** 1.5)
        signals.append(padded(tone, 11 * i) + rng.normal(0, sigma, tone.size + 11 * i))
    assert detect_many(signals) == list(DIGITS)


def test_a_10_ms_dropout_does_not_split_a_digit():
    signals = []
    for i, lead in enumerate(range(0, 160, 10)):
        d = DIGITS[i]
        tone = synthesize_dtmf(d, 200)
        tone[800 + lead : 880 + lead] = 0.0
        signals.append(padded(tone, lead))
    assert detect_many(signals) == list(DIGITS)


def test_different_digits_back_to_back():
    sequence = "159#0*D"
    signal = np.concatenate([np.concatenate([synthesize_dtmf(d, 50), np.zeros(400)]) for d in sequence])
    assert detect_many([signal, padded(signal, 77)], ulaw=True) == [sequence, sequence]


# --- twist and level ------------------------------------------------------------------------------


@pytest.mark.parametrize("twist_db", [8.0, 4.0, 0.0, -4.0, -6.0, -8.0])
def test_twist_within_limits_accepted(twist_db):
    # synthesize_dtmf's twist_db: positive = reverse twist (high group weaker), negative =
    # normal twist (high group stronger, as handsets send); 8 dB either way is accepted
    signals, expected = tones(level_dbm0=-10.0, twist_db=twist_db)
    assert detect_many(signals, ulaw=True) == expected


@pytest.mark.parametrize("twist_db", [10.0, 12.0, -10.0, -12.0])
def test_twist_beyond_limits_rejected(twist_db):
    signals, _ = tones(level_dbm0=-6.0, twist_db=twist_db)
    assert detect_many(signals) == [""] * 16


@pytest.mark.parametrize("level_dbm0", [-3.0, -8.0, -13.0, -18.0, -23.0, -28.0, -33.0, -38.0])
def test_levels_over_35_db_detected(level_dbm0):
    signals, expected = tones(level_dbm0=level_dbm0)
    assert detect_many(signals, ulaw=True) == expected


@pytest.mark.parametrize("level_dbm0", [-45.0, -50.0, -60.0])
def test_very_low_levels_rejected(level_dbm0):
    signals, _ = tones(level_dbm0=level_dbm0)
    assert detect_many(signals) == [""] * 16


def test_silence_and_quiet_noise_give_nothing():
    rng = np.random.default_rng(9)
    signals = [np.zeros(8000), rng.normal(0, 3.0, 8000), rng.normal(0, 300.0, 8000)]
    assert detect_many(signals) == ["", "", ""]


def with_harmonic(digit: str, group: int, harmonic_db: float) -> np.ndarray:
    """The digit (60 ms) plus a 2nd harmonic of its low (group 0) or high (group 1) tone."""
    index = DIGITS.index(digit)
    freq = (inband_dtmf.LOW_FREQS[index // 4], inband_dtmf.HIGH_FREQS[index % 4])[group]
    tone = synthesize_dtmf(digit, 60)
    t = np.arange(tone.size) / FS
    amplitude = inband_dtmf.DBM0_PEAK * 10 ** ((-10.0 + harmonic_db) / 20)
    return padded(tone + amplitude * np.sin(2 * np.pi * 2 * freq * t + 1.0), 100)


def test_strong_second_harmonic_rejected_weak_one_accepted():
    # -8 dB: the pair still holds > 85 % of the energy, so only the harmonic check can refuse it.
    usable = inband_dtmf._LOW_HARMONIC_USABLE
    low_digits = [d for i, d in enumerate(DIGITS) if usable[i // 4, i % 4]]
    assert len(low_digits) >= 8
    strong = [with_harmonic(d, 1, -8.0) for d in DIGITS] + [with_harmonic(d, 0, -8.0) for d in low_digits]
    weak = [with_harmonic(d, 1, -20.0) for d in DIGITS] + [with_harmonic(d, 0, -20.0) for d in low_digits]
    assert detect_many(strong) == [""] * len(strong)
    assert detect_many(weak) == list(DIGITS) + low_digits


# --- noise ----------------------------------------------------------------------------------------


def noisy_trials(snr_db: float, trials: int, seed: int, **kwargs) -> tuple[list[np.ndarray], list[str]]:
    """40 ms digits, random phases and alignment, white noise over 0-4 kHz at snr_db below the
    signal's power (both tones together) for the whole signal."""
    rng = np.random.default_rng(seed)
    signals, expected = [], []
    for i in range(trials):
        d = DIGITS[i % 16]
        tone = synthesize_dtmf(d, 40, phases=tuple(rng.uniform(0, 2 * np.pi, 2)), **kwargs)
        sigma = np.sqrt(np.mean(tone**2) / 10 ** (snr_db / 10))
        clean = padded(np.concatenate([tone, np.zeros(480)]), int(rng.integers(160, 320)))
        signals.append(clean + rng.normal(0, sigma, clean.size))
        expected.append(d)
    return signals, expected


def test_15_db_snr_detected_in_99_percent_of_trials():
    signals, expected = noisy_trials(15.0, 640, seed=1)
    found = detect_many(signals, ulaw=True)
    correct = sum(f == e for f, e in zip(found, expected))
    assert correct / len(expected) >= 0.99
    assert all(f in ("", e) for f, e in zip(found, expected))  # never a wrong or doubled digit


def test_noise_alone_gives_no_digits():
    rng = np.random.default_rng(2)
    signals = [rng.normal(0, sigma, 3 * FS) for sigma in (30.0, 300.0, 3000.0, 10000.0)]
    assert detect_many(signals) == [""] * 4


# --- talk-off -------------------------------------------------------------------------------------

SPEECH_TEXT = [
    "Hello, thank you for calling. Please enter your account number followed by the pound key.",
    "Your call is important to us. All of our representatives are busy assisting other customers.",
    "To hear these options again, press nine. For billing questions, press two, or stay on the line.",
    "The quick brown fox jumps over the lazy dog while five boxing wizards jump quickly.",
    "Music and singing: la la la, oh oh oh, mmmm, eeeee, a high pitched voice that sings along.",
]
SPEECH_VOICES = [("en-us", 50, 160), ("en-gb", 70, 175), ("en+f3", 80, 150), ("en-us+f4", 99, 140),
                 ("en+m3", 20, 180), ("en+klatt", 60, 170)]


def espeak(text: str, voice: str, pitch: int, speed: int) -> np.ndarray:
    assert shutil.which("espeak-ng"), "espeak-ng is required (apt-get install -y espeak-ng)"
    out = subprocess.run(
        ["espeak-ng", "--stdout", "-v", voice, "-p", str(pitch), "-s", str(speed), text],
        capture_output=True, check=True, timeout=60,
    ).stdout
    with wave.open(io.BytesIO(out)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return soxr.resample(pcm.astype(np.float32), rate, FS).astype(np.float64)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    audio = np.concatenate([espeak(t, *v) for v in SPEECH_VOICES for t in SPEECH_TEXT])
    assert audio.size / FS >= 60.0
    return audio / np.abs(audio).max()


@pytest.mark.parametrize("peak", [30000.0, 8000.0, 1500.0])
def test_speech_talk_off(speech, peak):
    # split the speech over 4 channels so the bank runs them side by side
    parts = np.array_split(speech * peak, 4)
    assert detect_many(parts, ulaw=True) == [""] * 4


def test_digits_are_still_found_after_speech(speech):
    signal = np.concatenate([speech[: 5 * FS] * 8000, np.zeros(800), synthesize_dtmf("7", 60),
                             np.zeros(800), speech[5 * FS : 8 * FS] * 8000, np.zeros(800),
                             synthesize_dtmf("#", 60)])
    assert detect_many([signal], ulaw=True) == ["7#"]


def music(seed: int) -> np.ndarray:
    """Chords of harmonic-rich notes (equal temperament, including near-DTMF pairs such as
    F5 + E6), and swept tones (single, harmonic-rich and fast dual sweeps)."""
    rng = np.random.default_rng(seed)

    def note(freq: float, dur: float, harmonics: int, decay: float) -> np.ndarray:
        t = np.arange(int(dur * FS)) / FS
        env = np.minimum(1.0, t / 0.01) * np.exp(-t * decay)
        ks = [k for k in range(1, harmonics + 1) if freq * k < 3900]
        return env * sum(np.sin(2 * np.pi * freq * k * t + rng.uniform(0, 2 * np.pi)) / k for k in ks)

    def midi(m: int) -> float:
        return 440.0 * 2 ** ((m - 69) / 12)

    parts = []
    for _ in range(100):
        keys = rng.choice(np.arange(55, 96), size=int(rng.integers(2, 5)), replace=False)
        parts.append(sum(note(midi(int(m)), 0.5, int(rng.integers(3, 8)), rng.uniform(0.5, 4)) for m in keys))
    for low in range(77, 83):
        for high in range(86, 92):
            parts.append(note(midi(low), 0.4, 6, 1.0) + note(midi(high), 0.4, 6, 1.0))
    t = np.arange(5 * FS) / FS
    parts.append(np.sin(2 * np.pi * (300 * t + 300 * t**2)))
    parts.append(sum(np.sin(2 * np.pi * k * (200 * t + 40 * t**2)) / k for k in range(1, 8)))
    # two tones swept together fast (a slow dual sweep through a DTMF pair IS a DTMF signal)
    parts.append(np.sin(2 * np.pi * (600 * t + 3000 * t**2)) + np.sin(2 * np.pi * (1100 * t + 2500 * t**2)))
    audio = np.concatenate(parts)
    return audio / np.abs(audio).max()


@pytest.mark.parametrize("peak", [20000.0, 3000.0])
def test_music_talk_off(peak):
    audio = music(seed=7) * peak
    assert audio.size / FS >= 60.0
    assert detect_many(np.array_split(audio, 3), ulaw=True) == [""] * 3


# --- vectorised bank == single channel ------------------------------------------------------------


def test_bank_matches_single_channel_detectors():
    rng = np.random.default_rng(3)
    sequences = ["12", "A#", "0000", "5", "", "*9D", "314", "88"]
    signals = []
    for i, seq in enumerate(sequences):
        parts = [np.zeros(int(rng.integers(0, 400)))]
        for d in seq:
            parts += [synthesize_dtmf(d, float(rng.integers(40, 120)), level_dbm0=float(rng.uniform(-30, -5)),
                                      phases=tuple(rng.uniform(0, 6.3, 2))), np.zeros(int(rng.integers(330, 800)))]
        audio = np.concatenate(parts)
        signals.append(to_int16(audio + rng.normal(0, 20.0, audio.size)))
    singles = []
    for s in signals:
        det = InbandDtmfDetector()
        chunk = int(rng.integers(1, 300))  # any feed size, including partial frames
        singles.append("".join(d for i in range(0, s.size, chunk) for d in det.feed(s[i : i + chunk])))
    assert singles == sequences
    # one bank: every frame visits the channels in a new order; channel 0 joins 7 frames late
    length = max(s.size for s in signals) + 7 * FRAME + 800
    audio = np.zeros((len(signals), length - length % FRAME), dtype=np.int16)
    for i, s in enumerate(signals):
        start = 7 * FRAME if i == 0 else 0
        audio[i, start : start + s.size] = s
    bank = InbandDtmfBank(16)
    slots = np.array([bank.open() for _ in range(12)])[[11, 3, 5, 0, 9, 1, 7, 2]]
    found = {int(slot): "" for slot in slots}
    for n, start in enumerate(range(0, audio.shape[1], FRAME)):
        order = rng.permutation(len(signals))
        if n < 7:
            order = order[order != 0]
        for slot, digit in bank.process(audio[order, start : start + FRAME], slots[order]):
            found[slot] += digit
    assert [found[int(slot)] for slot in slots] == sequences


def test_slots_are_independent_and_reset_on_reuse():
    tone = to_int16(synthesize_dtmf("3", 40))
    first, second = tone.reshape(2, FRAME)
    control = InbandDtmfBank(1)
    slot = control.open()
    assert control.process(first[None, :], [slot]) + control.process(second[None, :], [slot]) == [(slot, "3")]

    bank = InbandDtmfBank(2)
    a, b = bank.open(), bank.open()
    with pytest.raises(DtmfBankFull):
        bank.open()
    assert bank.process(first[None, :], [a]) == []
    bank.close(a)
    c = bank.open()
    assert c == a and bank.open_slots == 2
    # the reused slot starts afresh: its 20 ms do not join the 20 ms the old call heard
    assert bank.process(np.stack([second, first]), [c, b]) == []
    assert bank.process(second[None, :], [b]) == [(b, "3")]


def test_misuse_raises_value_error():
    bank = InbandDtmfBank(3)
    slot = bank.open()
    with pytest.raises(ValueError):
        bank.process(np.zeros((1, 80), dtype=np.int16), [slot])
    with pytest.raises(ValueError):
        bank.process(np.zeros((2, FRAME), dtype=np.int16), [slot, slot])
    with pytest.raises(ValueError):
        bank.process(np.zeros((1, FRAME), dtype=np.int16), [2])  # not open
    with pytest.raises(ValueError):
        bank.process(np.zeros((1, FRAME), dtype=np.int16), [7])
    with pytest.raises(ValueError):
        InbandDtmfBank(0)
    assert bank.process(np.zeros((0, FRAME), dtype=np.int16), []) == []


def test_feed_survives_odd_input():
    det = InbandDtmfDetector()
    assert det.feed([]) == []
    assert det.feed(np.full(1000, 1e9)) == []  # clipped, not a crash
    assert det.feed(np.array([np.nan, np.inf, -np.inf])) == []
    det.reset()
    assert det.feed(to_int16(np.concatenate([synthesize_dtmf("B", 60), np.zeros(400)]))) == ["B"]


def test_module_is_pure():
    tree = ast.parse(pathlib.Path(inband_dtmf.__file__).read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(m and m.startswith(("twisted", "socket", "time")) for m in modules | names)
