"""Packet time on the wire vs the engine's 20 ms frames.  Pure: bytes in, bytes out.

The engine works in 20 ms frames (160 samples at 8 kHz, one per media-clock tick), but a peer
may send packets of any duration: gateways and carriers commonly send 10, 30 or 40 ms whatever
``a=ptime`` says, and may change it mid-call.  G.711 has one octet per sample, so re-framing is
cutting and joining bytes, exact and codec-independent.

* :class:`Reframer` (receive): cuts each payload into 160-octet frames, keeping what is left
  over (under 20 ms) for the next payload, so every sample is delivered once and in order.
  What is left over when a new talkspurt starts (marker bit) or the payload type changes is
  delivered first, padded with the codec's silence.
* :class:`Packetizer` (send): joins the 160-octet frames of successive ticks into packets of
  the negotiated packet time (10 ms: two packets from one frame; 30 ms: one packet on two
  ticks out of three; 40/60 ms: one packet every second/third tick).  Each packet's
  timestamp is the timestamp of its first sample.
"""
from __future__ import annotations

__all__ = ["FRAME", "SEND_PTIMES", "Reframer", "Packetizer", "frames_per_packet"]

FRAME = 160  # samples (= G.711 octets) in one 20 ms frame
SEND_PTIMES = (10, 20, 30, 40, 60)  # packet times (ms) we send
_MASK32 = 0xFFFFFFFF


def frames_per_packet(octets: int) -> int:
    """The most 20 ms frames one payload of ``octets`` can complete (at least 1)."""
    return max(1, -(-octets // FRAME))


class Reframer:
    """Payloads of any size in, 160-octet frames out, each with the ``key`` (decoder) of the
    payload it came from."""

    __slots__ = ("_rest", "_key", "_pad")

    def __init__(self) -> None:
        self._rest = b""
        self._key = None
        self._pad = 0

    @property
    def pending(self) -> int:
        """Octets held for the next payload (always under one frame)."""
        return len(self._rest)

    def feed(self, payload: bytes, key, pad: int, marker: bool = False) -> list:
        """``[(frame, key), ...]`` completed by ``payload``; ``pad`` is the silence octet of
        its codec; ``marker`` (a new talkspurt) flushes what was left of the last one."""
        rest = self._rest
        out = []
        if rest and (marker or key is not self._key):
            out.append((rest + bytes([self._pad]) * (FRAME - len(rest)), self._key))
            rest = b""
        self._key, self._pad = key, pad
        if not rest and len(payload) == FRAME:  # the common case: one 20 ms packet
            self._rest = b""
            out.append((payload, key))
            return out
        data = rest + payload if rest else payload
        end = len(data) - len(data) % FRAME
        for start in range(0, end, FRAME):
            out.append((data[start:start + FRAME], key))
        self._rest = bytes(data[end:])
        return out

    def reset(self) -> None:
        self._rest = b""
        self._key = None


class Packetizer:
    """Frames of successive ticks in, ``(timestamp, payload, marker)`` packets out."""

    __slots__ = ("samples", "_buf", "_ts", "_marker")

    def __init__(self, samples: int = FRAME) -> None:
        if samples <= 0:
            raise ValueError("samples per packet must be positive")
        self.samples = samples
        self._buf = b""
        self._ts = 0
        self._marker = False

    @property
    def pending(self) -> int:
        return len(self._buf)

    def add(self, timestamp: int, payload: bytes, marker: bool = False) -> list:
        """Queue one frame starting at ``timestamp``; the packets now complete.  A frame that
        does not follow on from what is queued (a late tick moved the timestamp on) sends
        what is queued first, as a shorter packet."""
        out = []
        if self._buf and (self._ts + len(self._buf)) & _MASK32 != timestamp:
            out.extend(self.flush())
        if not self._buf:
            self._ts, self._marker = timestamp, marker
            buf = payload
        else:
            buf = self._buf + payload
            self._marker = self._marker or marker
        n = self.samples
        start = 0
        while len(buf) - start >= n:
            out.append((self._ts, buf[start:start + n], self._marker))
            self._ts = (self._ts + n) & _MASK32
            self._marker = False
            start += n
        self._buf = buf[start:] if start else buf
        return out

    def flush(self) -> list:
        """What is queued, as one (shorter) packet; [] when nothing is."""
        if not self._buf:
            return []
        out = [(self._ts, self._buf, self._marker)]
        self._ts = (self._ts + len(self._buf)) & _MASK32
        self._buf, self._marker = b"", False
        return out

    def clear(self) -> None:
        self._buf, self._marker = b"", False
