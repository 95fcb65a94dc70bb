"""Audio file helpers: read any common WAV as 8 kHz mono int16, write 8 kHz WAV.

Blocking, Twisted-free helpers. Callers on the reactor thread run them in a worker
(see :mod:`ivr.media.prompts` and :mod:`ivr.media.tts`).

``load_wav`` parses the RIFF container itself instead of using :mod:`wave`, because the
stdlib module of Python 3.11 rejects IEEE float (format 3) and WAVE_FORMAT_EXTENSIBLE
files, both common outputs of audio editors. Supported: PCM 8-bit unsigned, 16/24/32-bit
signed, float 32/64, any channel count (mixed down to mono), any sample rate (resampled
with soxr, quality HQ).
"""

from __future__ import annotations

import os
import struct
import tempfile
import threading
import wave
from collections import OrderedDict
from pathlib import Path

import numpy as np
import soxr

RATE = 8000

_FORMAT_PCM = 1
_FORMAT_FLOAT = 3
_FORMAT_EXTENSIBLE = 0xFFFE


class AudioFormatError(ValueError):
    """The file is not a WAV we can read (bad header, unsupported encoding)."""


def _parse_riff(data: bytes) -> tuple[int, int, int, int, bytes]:
    """Return (format tag, channels, rate, bits per sample, sample bytes)."""
    if len(data) < 12 or data[0:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFormatError("not a RIFF/WAVE file")
    pos, fmt, samples = 12, None, None
    while pos + 8 <= len(data):
        chunk_id, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8:pos + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise AudioFormatError("fmt chunk too short")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            if tag == _FORMAT_EXTENSIBLE:
                if len(body) < 26:
                    raise AudioFormatError("extensible fmt chunk too short")
                tag = struct.unpack_from("<H", body, 24)[0]  # first 2 bytes of SubFormat GUID
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            samples = body  # a truncated data chunk is read as far as it goes
        pos += 8 + size + (size & 1)
    if fmt is None or samples is None:
        raise AudioFormatError("missing fmt or data chunk")
    return (*fmt, samples)


def _decode(tag: int, bits: int, raw: bytes) -> np.ndarray:
    """Decode interleaved samples to float32 in int16 units (full scale = 32768)."""
    if tag == _FORMAT_PCM:
        if bits == 8:
            return (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) * 256.0
        if bits == 16:
            return np.frombuffer(raw, "<i2").astype(np.float32)
        if bits == 24:
            b = np.frombuffer(raw[:len(raw) // 3 * 3], np.uint8).reshape(-1, 3).astype(np.int32)
            v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
            v = np.where(v >= 1 << 23, v - (1 << 24), v)
            return v.astype(np.float32) / 256.0
        if bits == 32:
            return (np.frombuffer(raw, "<i4").astype(np.float64) / 65536.0).astype(np.float32)
    elif tag == _FORMAT_FLOAT:
        if bits == 32:
            return np.frombuffer(raw, "<f4").astype(np.float32) * 32768.0
        if bits == 64:
            return (np.frombuffer(raw, "<f8") * 32768.0).astype(np.float32)
    raise AudioFormatError(f"unsupported WAV encoding: format {tag}, {bits} bits")


def decode_wav_bytes(data: bytes, rate: int = RATE) -> np.ndarray:
    """Decode a whole WAV file image to mono int16 at ``rate`` Hz."""
    tag, channels, in_rate, bits, raw = _parse_riff(data)
    if channels < 1 or in_rate < 1 or bits < 8:
        raise AudioFormatError(f"bad fmt: {channels} channels, {in_rate} Hz, {bits} bits")
    width = (bits + 7) // 8
    frame = width * channels
    raw = raw[:len(raw) // frame * frame]
    x = _decode(tag, width * 8, raw)
    x = np.nan_to_num(x, nan=0.0, posinf=32767.0, neginf=-32768.0)
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return resample(x, in_rate, rate)


def resample(samples: np.ndarray, in_rate: int, rate: int = RATE) -> np.ndarray:
    """Resample mono samples (any dtype, int16 units) to int16 at ``rate`` with soxr HQ."""
    x = np.asarray(samples, dtype=np.float32)
    if in_rate != rate and len(x):
        x = soxr.resample(x, in_rate, rate, quality="HQ")
    return to_int16(x)


def to_int16(x: np.ndarray) -> np.ndarray:
    """Round and clip float samples in int16 units to a contiguous int16 array."""
    return np.ascontiguousarray(np.clip(np.rint(x), -32768, 32767).astype(np.int16))


def load_wav(path: str | os.PathLike, rate: int = RATE) -> np.ndarray:
    """Read a WAV file as mono int16 at ``rate`` Hz (8000 by default)."""
    with open(path, "rb") as f:
        return decode_wav_bytes(f.read(), rate)


def save_wav(path: str | os.PathLike, samples: np.ndarray, rate: int = RATE) -> None:
    """Write mono 16-bit PCM WAV atomically (temp file in the same directory + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(samples)
    if data.dtype != np.int16:
        data = to_int16(data)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".wav", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f, wave.open(f, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(data.astype("<i2").tobytes())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def tone(freq: float, seconds: float, rate: int = RATE, amplitude: float = 0.3) -> np.ndarray:
    """A sine tone as int16 with 5 ms fade in/out (no clicks)."""
    n = int(round(seconds * rate))
    x = np.sin(2 * np.pi * freq * np.arange(n) / rate) * amplitude * 32767.0
    fade = min(n // 2, int(0.005 * rate))
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        x[:fade] *= ramp
        x[n - fade:] *= ramp[::-1]
    return to_int16(x)


def silence(seconds: float, rate: int = RATE) -> np.ndarray:
    return np.zeros(int(round(seconds * rate)), dtype=np.int16)


def rms(samples: np.ndarray) -> float:
    if len(samples) == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.asarray(samples, dtype=np.float64) ** 2)))


def frozen(samples: np.ndarray) -> np.ndarray:
    """Mark an array read-only so a cached prompt cannot be altered by one caller for all."""
    samples.setflags(write=False)
    return samples


class ArrayLru:
    """Thread-safe LRU of numpy arrays bounded by total bytes."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024):
        self.max_bytes = max_bytes
        self._items: OrderedDict[object, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: object) -> np.ndarray | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: object, value: np.ndarray) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._items[key] = value
            self._bytes += value.nbytes
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= dropped.nbytes

    def pop(self, key: object) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes
