"""The media clock: ONE 20 ms ``LoopingCall.withCount`` drives every RTP stream (STYLE rule 5).

Each tick calls ``stream.tick(count)`` on every registered stream, where ``count`` is the
number of intervals elapsed since the previous tick (1 normally, more when the reactor was
late).  Policy for late ticks, implemented by the streams: the RTP timestamp advances by
``160 * count`` (the stream never drifts from wall-clock time) but only ONE frame is sent.
Sending the missed frames in a burst would arrive too late for the peer's jitter buffer anyway
and would spike its jitter estimate; a timestamp jump with contiguous sequence numbers is what
a receiver conceals best (it is exactly what silence suppression looks like).

The clock starts when the first stream registers and stops when the last one leaves, so an
idle server does not wake up 50 times a second.  A stream that raises is logged and kept; one
broken stream must not stop the clock for every call.
"""
from __future__ import annotations

from typing import Protocol

from twisted.internet import task
from twisted.python import log

__all__ = ["MediaClock", "TickingStream"]


class TickingStream(Protocol):
    def tick(self, count: int) -> None: ...


class MediaClock:
    def __init__(self, reactor, interval: float = 0.020) -> None:
        self.reactor = reactor
        self.interval = interval
        self._streams: list[TickingStream] = []
        self._loop: task.LoopingCall | None = None
        self.ticks = 0  # tick calls made
        self.late_ticks = 0  # ticks with count > 1
        self.missed_intervals = 0  # sum of (count - 1)
        self.stream_errors = 0

    @property
    def running(self) -> bool:
        return self._loop is not None and self._loop.running

    @property
    def streams(self) -> int:
        return len(self._streams)

    def register(self, stream: TickingStream) -> None:
        if stream in self._streams:
            return
        self._streams.append(stream)
        if self._loop is None:
            self._loop = task.LoopingCall.withCount(self._tick)
            self._loop.clock = self.reactor
            d = self._loop.start(self.interval, now=False)
            d.addErrback(log.err, "media clock stopped")

    def unregister(self, stream: TickingStream) -> None:
        try:
            self._streams.remove(stream)
        except ValueError:
            return
        if not self._streams and self._loop is not None:
            loop, self._loop = self._loop, None
            if loop.running:
                loop.stop()

    def _tick(self, count: int) -> None:
        self.ticks += 1
        if count > 1:
            self.late_ticks += 1
            self.missed_intervals += count - 1
        for stream in list(self._streams):
            try:
                stream.tick(count)
            except Exception:
                self.stream_errors += 1
                log.err(None, f"media clock: stream {stream!r} failed in tick")

    def metrics(self) -> dict:
        return {"ticks": self.ticks, "late_ticks": self.late_ticks,
                "missed_intervals": self.missed_intervals, "streams": len(self._streams),
                "stream_errors": self.stream_errors}
