"""A small playout (jitter) buffer between the network and the sound card.

The network side pushes decoded 8 kHz frames as they arrive (on the reactor thread); the
sound card's callback pulls exactly the number of samples it needs (on PortAudio's thread).
Pure and clock-free: the sound card's own pace is the clock.

Policy:

* priming: playout starts (and restarts after an underrun) only once ``target_ms`` of audio
  is buffered, so arrival jitter up to that much never cuts the sound;
* underrun: the missing part of a read is silence and the buffer primes again;
* overflow: when more than ``max_ms`` is buffered (the far end's clock runs faster than the
  sound card's, or a burst arrived), the oldest audio is dropped down to ``target_ms`` so
  latency stays bounded.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

__all__ = ["JitterBuffer", "JitterStats"]


@dataclass(frozen=True)
class JitterStats:
    buffered: int          # samples waiting
    underruns: int         # reads that ran dry after playout had started
    dropped: int           # samples discarded on overflow
    pushed: int            # samples received
    played: int            # real (not filler) samples handed to the sound card


class JitterBuffer:
    def __init__(self, target_ms: int = 60, max_ms: int = 200, rate: int = 8000) -> None:
        if not 0 <= target_ms < max_ms:
            raise ValueError("need 0 <= target_ms < max_ms")
        self.rate = rate
        self.target = rate * target_ms // 1000
        self.limit = rate * max_ms // 1000
        self._lock = threading.Lock()
        self._buf = np.zeros(0, dtype=np.int16)
        self._priming = True
        self._underruns = self._dropped = self._pushed = self._played = 0

    def push(self, frame) -> None:
        frame = np.asarray(frame, dtype=np.int16).ravel()
        with self._lock:
            self._pushed += len(frame)
            buf = np.concatenate([self._buf, frame])
            if len(buf) > self.limit:
                keep = max(self.target, 1)
                self._dropped += len(buf) - keep
                buf = buf[-keep:]
            self._buf = buf

    def read(self, n: int) -> np.ndarray:
        """Exactly ``n`` samples: buffered audio, padded with silence when there is not enough."""
        out = np.zeros(n, dtype=np.int16)
        with self._lock:
            if self._priming:
                if len(self._buf) < max(self.target, 1):
                    return out
                self._priming = False
            take = min(n, len(self._buf))
            out[:take] = self._buf[:take]
            self._buf = self._buf[take:]
            self._played += take
            if take < n:
                self._underruns += 1
                self._priming = True
        return out

    def clear(self) -> None:
        with self._lock:
            self._buf = np.zeros(0, dtype=np.int16)
            self._priming = True

    def stats(self) -> JitterStats:
        with self._lock:
            return JitterStats(len(self._buf), self._underruns, self._dropped, self._pushed, self._played)
