"""WavRecorder: an RTP audio listener that records 8 kHz mono 16-bit WAV.

Write policy (STYLE rule 12): frames are accumulated in memory on the reactor thread (cheap
list appends) and the file is written once, on ``close()``, in a worker thread via
``deferToThreadPool``.  Memory is bounded by ``max_seconds`` (16 kB per second of audio: a
5-minute voicemail is under 5 MB).  Frames beyond ``max_seconds`` are dropped and ``on_full``
is called once, so the record verb can stop.  With a reactor that has no thread pool (a
``task.Clock`` in tests) the file is written inline.
"""
from __future__ import annotations

import wave

import numpy as np
from twisted.internet import defer, threads

__all__ = ["WavRecorder", "write_wav", "SAMPLE_RATE"]

SAMPLE_RATE = 8000


def write_wav(path: str, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write int16 mono samples as a WAV file (blocking: call it off the reactor)."""
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())


class WavRecorder:
    def __init__(self, path: str, max_seconds: float, reactor=None, on_full=None) -> None:
        if max_seconds <= 0:
            raise ValueError("max_seconds must be positive")
        self.path = path
        self.max_samples = int(max_seconds * SAMPLE_RATE)
        self._reactor = reactor
        self._on_full = on_full
        self._frames: list[np.ndarray] = []
        self._samples = 0
        self._closed = False
        self.full = False

    def __call__(self, frame: np.ndarray) -> None:
        """The audio-listener entry point (``session.add_audio_listener(recorder)``)."""
        if self._closed or self.full:
            return
        frame = np.asarray(frame, dtype=np.int16).ravel()
        room = self.max_samples - self._samples
        if len(frame) >= room:
            frame = frame[:room]
            self.full = True
        self._frames.append(frame.copy())
        self._samples += len(frame)
        if self.full and self._on_full is not None:
            self._on_full()

    @property
    def seconds(self) -> float:
        return self._samples / SAMPLE_RATE

    def close(self):
        """Write the file in a worker thread; the Deferred fires with the duration in seconds."""
        if self._closed:
            raise RuntimeError("recorder already closed")
        self._closed = True
        samples = np.concatenate(self._frames) if self._frames else np.zeros(0, dtype=np.int16)
        self._frames = []
        seconds = len(samples) / SAMPLE_RATE
        reactor = self._reactor
        if reactor is None:
            from twisted.internet import reactor  # noqa: the entry point's reactor
        if hasattr(reactor, "getThreadPool"):
            d = threads.deferToThreadPool(reactor, reactor.getThreadPool(), write_wav, self.path, samples)
        else:  # a fake clock (task.Clock) in tests has no thread pool: write inline
            d = defer.maybeDeferred(write_wav, self.path, samples)
        d.addCallback(lambda _: seconds)
        return d
