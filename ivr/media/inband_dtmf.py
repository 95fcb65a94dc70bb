"""In-band DTMF detection (ITU-T Q.24) for many calls at once, vectorised with numpy.

Audio in, digits out: ``InbandDtmfBank.process(frames[n, 160], slots)`` takes one 20 ms frame
(8 kHz, int16) for each of n channels and returns ``[(slot, digit), ...]``. No clock, no I/O.

Analysis windows
    Each channel is analysed in 160-sample (20 ms) Hann windows advanced by 40 samples (5 ms), so
    every frame yields four windows per channel; the last 120 samples of each channel are kept.
    Each window position is one matrix product for all channels with a (160 x 32) basis:
    Hann-weighted cos/sin at the 8 DTMF frequencies and their 8 second harmonics (power = re^2 +
    im^2), i.e. 16 Goertzel filters evaluated as a matmul.
    A Hann window of 160 samples has a 75 Hz noise bandwidth (17 dB processing gain) and side lobes
    below -31 dB, so the other group's tone does not leak into the measurement.

A window is a *hit* for digit d when all of these hold (thresholds are module constants):
    frequency   the strongest bin in each group is the digit's pair, and the tone's true frequency,
                measured from the phase advance of that bin between consecutive windows (5 ms apart,
                unambiguous to +-100 Hz), is within 2.2 % of nominal: +-1.5 % is detected, +-3.5 %
                rejected (Q.24 / Bellcore; 2.2 % rather than 2.5 % stops a sung vowel whose 3rd and
                5th harmonics lie at +1.8 % / -2.2 % of 941 / 1633 Hz from passing for 'D'). The bin
                power is then corrected for the Hann response at that offset, so level and twist are
                measured on the true tone amplitude.
    level       each tone >= -42 dBm0 (tones at -38 dBm0 detected; silence and hum rejected).
    twist       the two tones' levels within 9 dB of each other, either way: 8 dB of normal twist
                (high group stronger, as handsets send it to make up for the line's loss of high
                frequencies; real handsets send 2-8 dB) and 8 dB of reverse twist (low group
                stronger) are accepted, 10 dB either way is rejected. This is wider than Bellcore's
                4 dB reverse twist on purpose: the purity and harmonic tests below, not the twist,
                are what keep speech and music out (see "Limits").
    purity      the two tones carry >= 85 % of the window's total (rectangular) energy, and neither
                tone has a second harmonic above -10 dB of itself (talk-off: speech and music are
                harmonic-rich and spread their energy). A low tone's harmonic is only checked where it
                falls well clear of the detected high tone (2 x 697 = 1394 lies next to 1336 Hz).
    duration    the four 40-sample quarters of the window each carry >= 40 % of the energy of the
                strongest quarter: the window is filled by the signal, not by its onset or its end.

Timing (Q.24: accept 40 ms, reject 23 ms, 40 ms pauses separate digits)
    A digit is reported once, at the 4th consecutive hit of the same digit (HITS_TO_ACCEPT).
    Four consecutive filled windows span 160 + 3 x 40 = 280 samples (35 ms), and every 40 ms tone,
    whatever its alignment, fully contains four windows starting on the 40-sample grid. A 23 ms tone
    (184 samples) cannot: any run of four windows leaves a whole 40-sample quarter of silence in the
    first or last window, which fails the duration test. The digit ends after 8 windows without it
    (MISSES_TO_RELEASE, 40 ms). A 40 ms pause contains at least seven whole quarters of silence and
    spoils at least ten consecutive windows, so a repeated digit is reported again; a dropout of
    10 ms spoils at most five (20 ms at most seven), so it does not split one tone into two
    digits, nor does a noisy window or two. A tone of any length is therefore one digit.

Noise: with white noise over 0-4 kHz at 15 dB below the two tones' power, 40 ms digits are
detected in >= 99 % of trials (12 dB: ~99 %, 10 dB: ~88 %; see bench/results).

Limits (what is accepted and rejected; tests/media/test_inband_dtmf*.py check each)
    twist       8 dB either way accepted (high group stronger: normal twist, as handsets send;
                low group stronger: reverse twist); 10 dB either way rejected (limit 9 dB).
    level       each tone from -38 dBm0 (detected) up to -3 dBm0 when both are equal, and the
                stronger one up to 0 dBm0 with 8 dB of twist; below -42 dBm0 rejected.
    duration    40 ms accepted at every alignment, 23 ms rejected; a 40 ms pause separates two
                digits, a 10 ms dropout does not split one; a tone of any length is one digit.
    frequency   +-1.5 % accepted, +-3.5 % rejected (the limit is 2.2 %), for each tone.
    noise       white noise 15 dB below the pair: >= 99 % of 40 ms digits found, never a wrong one.
    talk-off    no digit over 20 minutes (15 voiced) of the server's own TTS (espeak-ng through the
                same renderer: six English voices and six other languages, rates 130-260 wpm,
                sentences, numbers, names, spelling, sustained vowels) at three levels, nor over
                music (chords, sweeps), two-tone pairs that are not digits and noise, all through
                G.711 u-law.

Cost: one (n x 160) @ (160 x 32) float32 product per window position, a few elementwise passes,
and the full classification only for windows that pass cheap necessary tests (level, purity and
duration on the strongest bins): about 1.4 us per channel per 20 ms frame on one core
(bench/bench_inband_dtmf.py).

Levels (dBm0 to int16)
    G.711 u-law's full-scale sine is +3.17 dBm0 (the digital milliwatt, 0 dBm0, peaks at 8031 of
    8159 in 14-bit terms). With int16 full scale 32767, a 0 dBm0 sine has peak amplitude
    DBM0_PEAK = 32767 x 10^(-3.17/20) ~= 22773, i.e. a sine of L dBm0 has amplitude 22773 x 10^(L/20).
    The accepted range per tone is -38 .. -3 dBm0 (35 dB); both tones at -3 dBm0 still fit in int16.

State per channel slot (numpy arrays indexed by slot): last 120 samples, the previous window's
8 complex bins, the last three quarter energies, and the counters of a small numeric machine
(candidate digit + run length, active digit + miss count). It is numeric rather than an Enum
table because it advances for thousands of channels in one vectorised step.
"""
from __future__ import annotations

import numpy as np

SAMPLE_RATE = 8000
FRAME = 160
WINDOW = 160
HOP = 40
LOW_FREQS = (697.0, 770.0, 852.0, 941.0)
HIGH_FREQS = (1209.0, 1336.0, 1477.0, 1633.0)
DIGITS = "123A456B789C*0#D"  # DIGITS[4 * low_index + high_index]
DBM0_PEAK = 32767.0 * 10.0 ** (-3.17 / 20.0)

MAX_FREQ_DEVIATION = 0.022
MIN_TONE_DBM0 = -42.0
MAX_NORMAL_TWIST_DB = 9.0  # high group stronger than the low group
MAX_REVERSE_TWIST_DB = 9.0  # low group stronger than the high group
MIN_TONE_FRACTION = 0.85
MAX_HARMONIC_DB = -10.0
MIN_QUARTER_RATIO = 0.40
HITS_TO_ACCEPT = 4
MISSES_TO_RELEASE = 8

_FREQS = np.array(LOW_FREQS + HIGH_FREQS)
_ALL_FREQS = np.concatenate([_FREQS, 2.0 * _FREQS])
_HANN = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(WINDOW) / WINDOW)  # periodic, sum = 80
_BIN_HZ = SAMPLE_RATE / WINDOW
_PHASE_TO_HZ = SAMPLE_RATE / (2.0 * np.pi * HOP)
_MIN_TONE_POWER = (DBM0_PEAK * 10.0 ** (MIN_TONE_DBM0 / 20.0)) ** 2 / 2.0
_NO_DIGIT = -1
_POWER_SCALE = 2.0 * (_HANN.sum() / 2.0) ** 2  # |bin|^2 per unit tone power: |bin| = A sum(w) / 2, power A^2 / 2


def _basis() -> np.ndarray:
    n = np.arange(WINDOW)
    omega = 2.0 * np.pi * _ALL_FREQS / SAMPLE_RATE
    arg = np.outer(n, omega)
    basis = np.concatenate([_HANN[:, None] * np.cos(arg), -_HANN[:, None] * np.sin(arg)], axis=1)
    return basis.astype(np.float32)


def _low_harmonic_usable() -> np.ndarray:
    """usable[lo, hi]: 2 x low tone lies > 3 bins from the high tone, so its bin measures a harmonic."""
    return np.abs(2.0 * np.array(LOW_FREQS)[:, None] - np.array(HIGH_FREQS)[None, :]) > 3 * _BIN_HZ


_BASIS = _basis()
_ROTATE = np.exp(-1j * 2.0 * np.pi * _FREQS * HOP / SAMPLE_RATE).astype(np.complex64)
_LOW_HARMONIC_USABLE = _low_harmonic_usable()
# Hann power response at the largest accepted offset (x 0.9): a bin can read no lower than this.
_EDGE = MAX_FREQ_DEVIATION * max(HIGH_FREQS) / _BIN_HZ
_GATE = 0.9 * (np.sinc(_EDGE) / (1.0 - _EDGE**2)) ** 2


class DtmfBankFull(RuntimeError):
    """open() found no free channel slot (our capacity, not the peer's fault)."""


class InbandDtmfBank:
    """Per-slot DTMF detection state for up to max_channels channels, advanced in one pass."""

    def __init__(self, max_channels: int) -> None:
        if max_channels < 1:
            raise ValueError("max_channels must be >= 1")
        self.max_channels = max_channels
        self._open = np.zeros(max_channels, dtype=bool)
        self._tail = np.zeros((max_channels, WINDOW - HOP), dtype=np.float32)
        self._last_bins = np.zeros((max_channels, 8), dtype=np.complex64)
        self._quarters = np.zeros((max_channels, 3), dtype=np.float32)
        self._candidate = np.full(max_channels, _NO_DIGIT, dtype=np.int8)
        self._run = np.zeros(max_channels, dtype=np.int32)
        self._active = np.full(max_channels, _NO_DIGIT, dtype=np.int8)
        self._misses = np.zeros(max_channels, dtype=np.int32)

    def open(self) -> int:
        free = np.flatnonzero(~self._open)
        if free.size == 0:
            raise DtmfBankFull(f"all {self.max_channels} slots in use")
        slot = int(free[0])
        self._reset(slot)
        self._open[slot] = True
        return slot

    def close(self, slot: int) -> None:
        self._check_slots(np.array([slot]))
        self._open[slot] = False
        self._reset(slot)

    @property
    def open_slots(self) -> int:
        return int(self._open.sum())

    def _reset(self, slot: int) -> None:
        self._tail[slot] = 0.0
        self._last_bins[slot] = 0.0
        self._quarters[slot] = 0.0
        self._candidate[slot] = _NO_DIGIT
        self._run[slot] = 0
        self._active[slot] = _NO_DIGIT
        self._misses[slot] = 0

    def _check_slots(self, slots: np.ndarray) -> None:
        if slots.ndim != 1:
            raise ValueError("channel ids must be a 1-D sequence of slots")
        if slots.size and (slots.min() < 0 or slots.max() >= self.max_channels):
            raise ValueError("channel id out of range")
        if not self._open[slots].all():
            raise ValueError("channel id is not an open slot")

    def process(self, frames: np.ndarray, channel_ids) -> list[tuple[int, str]]:
        """Advance each listed slot by one 20 ms frame; return digits detected, in time order."""
        slots = np.asarray(channel_ids, dtype=np.intp).reshape(-1)
        frames = np.asarray(frames)
        if frames.ndim != 2 or frames.shape != (slots.size, FRAME):
            raise ValueError(f"frames must have shape ({slots.size}, {FRAME}), got {frames.shape}")
        self._check_slots(slots)
        if np.unique(slots).size != slots.size:
            raise ValueError("a channel id appears twice in one call")
        if slots.size == 0:
            return []
        hits = self._hits(frames.astype(np.float32), slots)
        return self._advance(hits, slots)

    def _hits(self, x: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Digit index (or -1) for each of the 4 new windows of each channel: shape (n, 4)."""
        n = slots.size
        buf = np.empty((n, WINDOW - HOP + FRAME), dtype=np.float32)
        buf[:, : WINDOW - HOP] = self._tail[slots]
        buf[:, WINDOW - HOP :] = x
        self._tail[slots] = x[:, FRAME - (WINDOW - HOP) :]
        y = np.empty((n, 4, 32), dtype=np.float32)
        for k in range(4):  # window k = buf[:, 40k : 40k + 160]; strided rows go straight to BLAS
            np.matmul(buf[:, k * HOP : k * HOP + WINDOW], _BASIS, out=y[:, k])
        squared = y * y
        power = squared[..., :16] + squared[..., 16:]
        bins = y[..., :8] + 1j * y[..., 16:24]

        quarter = np.einsum("ijk,ijk->ij", x.reshape(n, 4, HOP), x.reshape(n, 4, HOP))
        quarters = np.concatenate([self._quarters[slots], quarter], axis=1)
        self._quarters[slots] = quarter[:, 1:]
        q0, q1, q2, q3 = (quarters[:, i : i + 4] for i in range(4))  # window k: quarters k..k+3
        total = q0 + q1 + q2 + q3
        filled = np.minimum(np.minimum(q0, q1), np.minimum(q2, q3)) >= MIN_QUARTER_RATIO * np.maximum(
            np.maximum(q0, q1), np.maximum(q2, q3))

        previous = np.concatenate([self._last_bins[slots][:, None, :], bins[:, :3]], axis=1)
        self._last_bins[slots] = bins[:, 3]

        # Cheap necessary conditions first; only the few windows that pass get the full tests.
        p = [power[..., i] for i in range(8)]  # pairwise maxima: far faster than max(axis=2)
        best_lo = np.maximum(np.maximum(p[0], p[1]), np.maximum(p[2], p[3]))
        best_hi = np.maximum(np.maximum(p[4], p[5]), np.maximum(p[6], p[7]))
        candidate = filled & (np.minimum(best_lo, best_hi) >= (_GATE * _POWER_SCALE) * _MIN_TONE_POWER)
        candidate &= best_lo + best_hi >= (_GATE * _POWER_SCALE * MIN_TONE_FRACTION / WINDOW) * total
        hits = np.full((n, 4), _NO_DIGIT, dtype=np.int8)
        where = np.flatnonzero(candidate)
        if where.size:
            hits.flat[where] = _classify(
                power.reshape(-1, 16)[where], bins.reshape(-1, 8)[where],
                previous.reshape(-1, 8)[where], total.reshape(-1)[where],
            )
        return hits

    def _advance(self, hits: np.ndarray, slots: np.ndarray) -> list[tuple[int, str]]:
        candidate = self._candidate[slots]
        run = self._run[slots]
        active = self._active[slots]
        misses = self._misses[slots]
        events: list[tuple[int, str]] = []
        for k in range(hits.shape[1]):
            hit = hits[:, k]
            same = hit == candidate
            run = np.where(same, run + 1, 1)
            candidate = hit
            accept = (hit != _NO_DIGIT) & (run == HITS_TO_ACCEPT) & (hit != active)
            for i in np.flatnonzero(accept):
                events.append((int(slots[i]), DIGITS[hit[i]]))
            active = np.where(accept, hit, active)
            misses = np.where(hit == active, 0, misses + 1)
            active = np.where(misses >= MISSES_TO_RELEASE, _NO_DIGIT, active).astype(np.int8)
        self._candidate[slots] = candidate
        self._run[slots] = np.minimum(run, HITS_TO_ACCEPT + 1)
        self._active[slots] = active
        self._misses[slots] = np.minimum(misses, MISSES_TO_RELEASE)
        return events


def _classify(power: np.ndarray, bins: np.ndarray, previous: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Digit index or -1 for m candidate windows: power (m, 16) of the 8 bins and 8 harmonics
    (scaled by 3200 = (sum(hann)/2)^2 per unit tone power), complex bins of this and the
    previous window (m, 8), total rectangular energy (m,)."""
    rows = np.arange(power.shape[0])
    lo = power[:, 0:4].argmax(axis=1)
    hi = power[:, 4:8].argmax(axis=1) + 4
    ok = np.ones(rows.size, dtype=bool)
    measured = []
    for idx in (lo, hi):
        offset_hz = np.angle(bins[rows, idx] * np.conj(previous[rows, idx]) * _ROTATE[idx]) * _PHASE_TO_HZ
        ok &= np.abs(offset_hz) <= MAX_FREQ_DEVIATION * _FREQS[idx]
        delta = np.clip(offset_hz / _BIN_HZ, -0.9, 0.9)
        gain = np.sinc(delta) / (1.0 - delta**2)  # Hann response at delta bins
        measured.append((power[rows, idx] / (_POWER_SCALE * gain**2), power[rows, idx + 8] / _POWER_SCALE))
    (p_lo, h_lo), (p_hi, h_hi) = measured
    harmonic_limit = 10.0 ** (MAX_HARMONIC_DB / 10.0)
    ok &= (p_lo >= _MIN_TONE_POWER) & (p_hi >= _MIN_TONE_POWER)
    ok &= p_hi <= p_lo * 10.0 ** (MAX_NORMAL_TWIST_DB / 10.0)
    ok &= p_lo <= p_hi * 10.0 ** (MAX_REVERSE_TWIST_DB / 10.0)
    ok &= (p_lo + p_hi) >= MIN_TONE_FRACTION * (total / WINDOW)
    ok &= h_hi <= harmonic_limit * p_hi
    ok &= (h_lo <= harmonic_limit * p_lo) | ~_LOW_HARMONIC_USABLE[lo, hi - 4]
    return np.where(ok, 4 * lo + (hi - 4), _NO_DIGIT)


class InbandDtmfDetector:
    """One channel on top of a one-slot bank; feed() takes any number of samples at a time."""

    def __init__(self) -> None:
        self._bank = InbandDtmfBank(1)
        self._slot = self._bank.open()
        self._pending = np.zeros(0, dtype=np.int16)

    def feed(self, samples) -> list[str]:
        data = np.asarray(samples).reshape(-1)
        if data.size and not np.issubdtype(data.dtype, np.number):
            raise ValueError("samples must be numeric")
        data = np.clip(np.nan_to_num(data.astype(np.float64)), -32768, 32767).astype(np.int16)
        self._pending = np.concatenate([self._pending, data])
        digits: list[str] = []
        while self._pending.size >= FRAME:
            frame, self._pending = self._pending[:FRAME], self._pending[FRAME:]
            digits.extend(d for _, d in self._bank.process(frame[None, :], [self._slot]))
        return digits

    def reset(self) -> None:
        self._bank.close(self._slot)
        self._slot = self._bank.open()
        self._pending = np.zeros(0, dtype=np.int16)


def synthesize_dtmf(
    digit: str,
    duration_ms: float,
    level_dbm0: float = -10.0,
    twist_db: float = 0.0,
    freq_offsets: tuple[float, float] = (0.0, 0.0),
    phases: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Float samples of a DTMF digit: low tone at level_dbm0, high tone at level_dbm0 - twist_db
    (positive twist_db = reverse twist, high weaker; negative = normal twist, high stronger, as
    handsets send); freq_offsets are relative (0.015 = +1.5 %)."""
    index = DIGITS.index(digit.upper())
    f_lo = LOW_FREQS[index // 4] * (1.0 + freq_offsets[0])
    f_hi = HIGH_FREQS[index % 4] * (1.0 + freq_offsets[1])
    t = np.arange(int(round(duration_ms * SAMPLE_RATE / 1000.0))) / SAMPLE_RATE
    a_lo = DBM0_PEAK * 10.0 ** (level_dbm0 / 20.0)
    a_hi = DBM0_PEAK * 10.0 ** ((level_dbm0 - twist_db) / 20.0)
    return a_lo * np.sin(2 * np.pi * f_lo * t + phases[0]) + a_hi * np.sin(2 * np.pi * f_hi * t + phases[1])
