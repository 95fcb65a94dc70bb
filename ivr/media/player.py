"""Audio sources for RTP playback: 160-sample (20 ms at 8 kHz) int16 frames, pulled one per tick.

Pure.  A source is any object with ``read_frame() -> numpy.ndarray | None``; ``None`` means it
is finished (and stays finished).  Frames are 1-D int16 arrays of ``FRAME_SAMPLES`` samples.
:class:`CatchUpBuffer` holds live audio pushed in by a receiver (the echo) and plays it out
with a small, bounded delay that returns to nominal after a stall.
"""
from __future__ import annotations

import sys
from collections import OrderedDict, deque
from typing import Callable, Iterable, Protocol

import numpy as np

__all__ = ["FRAME_SAMPLES", "SAMPLE_RATE", "Source", "PcmSource", "SilenceSource", "SequenceSource",
           "CatchUpBuffer"]

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160


class Source(Protocol):
    def read_frame(self) -> np.ndarray | None: ...


# Encoded copies of read-only prompt arrays (the TTS and prompt caches hand out frozen
# arrays shared by every call playing them): each prompt is G.711-encoded once per codec
# instead of once per frame per call, and cut once into its whole 160-octet frames, which
# every call then sends as they are (no slice per frame per call).  Keyed by the array's id
# with the array kept alive.
_ENCODED: "OrderedDict[tuple[int, object], tuple[np.ndarray, bytes, tuple]]" = OrderedDict()
_ENCODED_MAX = 256
_NO_FRAMES: tuple = ()


def _encoded(samples: np.ndarray, encode: Callable) -> tuple[bytes, tuple]:
    """The encoded prompt, and its whole frames at multiples of 160 (empty unless shared)."""
    key = (id(samples), encode)
    hit = _ENCODED.get(key)
    if hit is not None and hit[0] is samples:
        _ENCODED.move_to_end(key)
        return hit[1], hit[2]
    data = encode(samples).tobytes()
    if samples.flags.writeable:
        return data, _NO_FRAMES
    frames = tuple(data[i:i + FRAME_SAMPLES]
                   for i in range(0, len(data) - FRAME_SAMPLES + 1, FRAME_SAMPLES))
    _ENCODED[key] = (samples, data, frames)
    if len(_ENCODED) > _ENCODED_MAX:
        _ENCODED.popitem(last=False)
    return data, frames


class PcmSource:
    """Plays an int16 array ``loop`` times (``loop=0``: forever).

    Loops are joined seamlessly (frames straddle the loop point); only the very last frame is
    zero-padded to a full 160 samples.
    """

    def __init__(self, samples: np.ndarray, loop: int = 1) -> None:
        arr = np.asarray(samples)
        if arr.ndim != 1:
            raise ValueError("PcmSource needs mono (1-D) samples")
        if arr.dtype != np.int16:
            if not np.issubdtype(arr.dtype, np.integer):
                raise TypeError(f"PcmSource needs int16 samples, got {arr.dtype}")
            arr = np.clip(arr, -32768, 32767).astype(np.int16)
        if loop < 0:
            raise ValueError("loop must be >= 0 (0 = forever)")
        self.samples = arr
        self.loop = loop
        self._pos = 0  # absolute sample position over all loops
        self._encoded_with: Callable | None = None  # the encoder of _encoded_bytes
        self._encoded_bytes = b""
        self._n = max(1, len(arr))
        self._frames: tuple = _NO_FRAMES  # the shared prompt's whole frames (_use_frames)
        self._frames_until = 0  # read_encoded hands out _frames while _pos is below this
        self._total = None if loop == 0 else len(arr) * loop
        if len(arr) == 0:
            self._total = 0

    @property
    def frames_total(self) -> int | None:
        """Number of frames this source will produce (None when looping forever)."""
        return None if self._total is None else -(-self._total // FRAME_SAMPLES)

    def read_frame(self) -> np.ndarray | None:
        total = self._total
        if total is not None and self._pos >= total:
            return None
        n = len(self.samples)
        want = FRAME_SAMPLES if total is None else min(FRAME_SAMPLES, total - self._pos)
        start = self._pos % n
        if start + want <= n:
            chunk = self.samples[start:start + want]
        else:  # wraps the loop point
            idx = (np.arange(self._pos, self._pos + want)) % n
            chunk = self.samples[idx]
        self._pos += want
        if want < FRAME_SAMPLES:
            frame = np.zeros(FRAME_SAMPLES, dtype=np.int16)
            frame[:want] = chunk
            return frame
        return chunk.copy()

    def read_encoded(self, encode: Callable) -> bytes | None:
        """The next frame already G.711-encoded with ``encode`` (same frames as
        ``read_frame``): a slice of the prompt encoded once, not an encode per frame."""
        pos = self._pos
        if pos < self._frames_until and encode is self._encoded_with:
            # A whole frame on a frame boundary of a shared prompt: handed out as it is.
            self._pos = pos + FRAME_SAMPLES
            return self._frames[pos % self._n // FRAME_SAMPLES]
        total = self._total
        if total is not None and pos >= total:
            return None
        if encode is not self._encoded_with:  # the first frame, or the codec changed
            self._encoded_bytes, frames = _encoded(self.samples, encode)
            self._encoded_with = encode
            self._pad = encode(np.zeros(1, dtype=np.int16)).tobytes()
            if self._use_frames(frames) and pos < self._frames_until:
                self._pos = pos + FRAME_SAMPLES
                return frames[pos % self._n // FRAME_SAMPLES]
        encoded = self._encoded_bytes
        n = len(encoded)
        start = pos % n
        if total is None or total - pos >= FRAME_SAMPLES:
            want = FRAME_SAMPLES
        else:
            want = total - pos
        self._pos = pos + want
        end = start + want
        if end <= n:
            chunk = encoded[start:end]
        else:  # wraps the loop point
            chunk = encoded[start:] + encoded[:end - n]
        if want < FRAME_SAMPLES:
            chunk += self._pad * (FRAME_SAMPLES - want)
        return chunk

    def _use_frames(self, frames: tuple) -> bool:
        """Where read_encoded can hand out ``frames`` (whole frames at multiples of 160 of
        the prompt): every position of a prompt of whole frames, or, played once, every
        frame but a short last one.  A prompt looped at another length straddles its loop
        point at positions off the frame grid, so it keeps slicing."""
        n = len(self.samples)
        self._frames, self._frames_until = frames, 0
        if not frames or self._pos % FRAME_SAMPLES:
            return False
        if n % FRAME_SAMPLES == 0:
            self._frames_until = sys.maxsize if self._total is None else self._total
        elif self.loop == 1:
            self._frames_until = n - FRAME_SAMPLES + 1
        return self._frames_until > 0


class SilenceSource:
    """``seconds`` of digital silence, rounded up to whole frames."""

    def __init__(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        self.remaining = int(np.ceil(round(seconds * SAMPLE_RATE / FRAME_SAMPLES, 6)))

    def read_frame(self) -> np.ndarray | None:
        if self.remaining <= 0:
            return None
        self.remaining -= 1
        return np.zeros(FRAME_SAMPLES, dtype=np.int16)


class SequenceSource:
    """Plays sources one after another (no gap between them)."""

    def __init__(self, sources: Iterable[Source]) -> None:
        self._sources = list(sources)
        self._index = 0

    def read_frame(self) -> np.ndarray | None:
        while self._index < len(self._sources):
            frame = self._sources[self._index].read_frame()
            if frame is not None:
                return frame
            self._index += 1
        return None


class CatchUpBuffer:
    """Live frames pushed by a receiver, read one per media tick, with a delay that catches up.

    Frames arrive on the network's schedule and leave on the media clock's, so the number
    waiting at a read varies: normally 1, 0 or 2 with jitter, several after a stall (the peer's
    packets held up and then delivered in a burst, or the server's clock firing late, which
    sends one frame for several periods).  Without a rule each stall adds its length to the
    delay for the rest of the stream.  Two rules keep it near one frame:

    * at a read, at most ``max_waiting`` frames are kept; older ones are dropped at once
      (after a burst the delay is back under ``max_waiting`` x 20 ms at the next read);
    * when at least two frames were waiting at every read for ``settle_reads`` reads in a row,
      the surplus that was always there (the smallest count seen, less one) is pure delay and
      is dropped: a transient extra frame from jitter is kept, a standing one goes within
      ``settle_reads`` x 20 ms.

    Packets longer than 20 ms arrive as ``burst`` frames at once (a 40 ms packet: two every
    other read; 60 ms: three every third), which is not a stall: ``push(frame, burst)`` says
    how many one packet brings, and the latest burst widens ``max_waiting`` by ``burst - 1``
    (60 ms packets: up to 4 kept instead of 2), so none of a long packet is dropped.  The
    settle rule needs no change: the fewest waiting over a run is still 1 with long packets.

    An empty buffer plays silence.  At most ``max_frames`` are held between reads (a flood
    cannot grow it).  Counters: ``played``, ``underruns``, ``dropped``.
    """

    def __init__(self, max_waiting: int = 2, settle_reads: int = 10, max_frames: int = 50) -> None:
        if max_waiting < 1 or settle_reads < 1 or max_frames < max_waiting:
            raise ValueError("need max_waiting >= 1, settle_reads >= 1, max_frames >= max_waiting")
        self.max_waiting = max_waiting
        self.settle_reads = settle_reads
        self.frames: deque = deque()
        self.max_frames = max_frames
        self.played = 0
        self.underruns = 0
        self.dropped = 0
        self._run = 0  # reads in a row with >= 2 frames waiting
        self._run_min = 0  # the fewest frames waiting over that run
        self.burst = 1  # frames the latest packet could bring at once

    def push(self, frame, burst: int = 1) -> None:
        """One 20 ms frame; ``burst``: how many frames its packet could complete."""
        self.burst = burst if burst > 1 else 1
        frames = self.frames
        if len(frames) >= self.max_frames:
            frames.popleft()
            self.dropped += 1
        frames.append(frame)

    def __len__(self) -> int:
        return len(self.frames)

    def read_frame(self):
        frames = self.frames
        waiting = len(frames)
        limit = self.max_waiting + self.burst - 1
        if waiting > limit:
            self._drop(waiting - limit)
            waiting = limit
        if waiting >= 2:
            self._run_min = waiting if self._run == 0 else min(self._run_min, waiting)
            self._run += 1
            if self._run >= self.settle_reads:
                self._drop(self._run_min - 1)
                self._run = 0
        else:
            self._run = 0
        if not frames:
            self.underruns += 1
            return np.zeros(FRAME_SAMPLES, dtype=np.int16)
        self.played += 1
        return frames.popleft()

    def _drop(self, n: int) -> None:
        for _ in range(n):
            self.frames.popleft()
        self.dropped += n
