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

Phases (``phases=N``): still one clock and one LoopingCall, firing every 20/N ms, with the
streams spread over N phases (each new stream joins the emptiest).  Every stream is still
ticked once per 20 ms, but a firing serves only 1/N of them, so the packets of the stream
served last in a firing leave after 1/N of the work, not all of it, and the spread of send
times within a period, with the jitter that the variable cost of the streams before a stream
adds to its interval, shrinks with it (bench/README.md has the figures).

A stream registered with ``every_firing=True`` is ticked at every firing instead (count 1
each time a firing happens): for batch work that consumes what arrived since the last firing,
such as the in-band DTMF detector, spreading it over the firings instead of piling a whole
period's work onto one phase.

A stream's ``tick`` may return a callable: the rest of its tick, run once every stream of the
firing has sent its packet.  A session whose prompt just ended uses it to run the dialplan
(which starts the next prompt) outside the send loop, so that work delays that one stream's
packet instead of every stream ticked after it (see ``RtpSession.tick``).

Receiving (``receiver=``, the server): a :class:`~ivr.rtp.receiver.MediaReceiver` is polled at
the end of every firing, after the firing's packets were sent, so incoming RTP is read in
batches by the clock instead of one reactor wake-up per packet (see ``receiver.py``).

Sending (``batch``, a :class:`~ivr.rtp.sendbatch.SendBatch` over the process's batched socket
I/O, :mod:`ivr.rtp.mmsg`): during a firing the sessions' packets are collected, and each
phase's go out together once its streams were ticked (``sendmmsg``: one call into C for the
whole phase), again after the rest of the ticks and after the receive poll (packets relayed
on arrival).  The receiver shares the batch for the reads it does in reactor turns.
"""
from __future__ import annotations

from typing import Protocol

from twisted.internet import task
from twisted.python import log

from . import mmsg
from .sendbatch import SendBatch

__all__ = ["MediaClock", "TickingStream", "SERVER_PHASES"]

#: The phases the server's clock uses (a firing every 5 ms, each serving a quarter).
SERVER_PHASES = 4


class TickingStream(Protocol):
    def tick(self, count: int) -> None: ...


class MediaClock:
    def __init__(self, reactor, interval: float = 0.020, phases: int = 1, receiver=None,
                 io=None) -> None:
        """``io``: the batched socket I/O backend (:mod:`ivr.rtp.mmsg`); the process's
        default (native unless missing or ``IVR_MEDIA_IO=pure``) when None."""
        if phases < 1:
            raise ValueError("phases must be >= 1")
        self.reactor = reactor
        self.receiver = receiver
        self.batch = SendBatch(io if io is not None else mmsg.default())
        if receiver is not None and hasattr(receiver, "use_batch"):
            receiver.use_batch(self.batch)
        self.interval = interval
        self.phases = phases
        self._streams: list[TickingStream] = []
        self._phase_of: dict[int, int] = {}  # id(stream) -> phase
        self._by_phase: list[list[TickingStream]] = [[] for _ in range(phases)]
        self._every: list[TickingStream] = []  # ticked at every firing
        self._step = 0  # firings' worth of sub-intervals elapsed since start
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

    def register(self, stream: TickingStream, every_firing: bool = False) -> None:
        if stream in self._streams:
            return
        self._streams.append(stream)
        if every_firing:
            self._phase_of[id(stream)] = -1
            self._every.append(stream)
        else:
            phase = min(range(self.phases), key=lambda p: len(self._by_phase[p]))
            self._phase_of[id(stream)] = phase
            self._by_phase[phase].append(stream)
        if self._loop is None:
            self._step = 0
            self._loop = task.LoopingCall.withCount(self._tick)
            self._loop.clock = self.reactor
            d = self._loop.start(self.interval / self.phases, now=False)
            d.addErrback(log.err, "media clock stopped")

    def unregister(self, stream: TickingStream) -> None:
        try:
            self._streams.remove(stream)
        except ValueError:
            return
        phase = self._phase_of.pop(id(stream))
        (self._every if phase < 0 else self._by_phase[phase]).remove(stream)
        if not self._streams and self._loop is not None:
            loop, self._loop = self._loop, None
            if loop.running:
                loop.stop()

    def _tick(self, count: int) -> None:
        batch = self.batch
        nested = batch.open()
        try:
            self._fire(count)
        finally:
            if not nested:
                batch.close()

    def _fire(self, count: int) -> None:
        n = self.phases
        first, last = self._step + 1, self._step + count  # the sub-intervals that elapsed
        self._step = last
        if n == 1:
            self._run(self._by_phase[0], count)
        else:
            # Serve every phase whose slot fell in (first..last], in the order the slots
            # came, each with the number of its 20 ms periods that elapsed.
            for step in range(max(first, last - n + 1), last + 1):
                phase = step % n
                periods = (last - phase) // n - (first - 1 - phase) // n
                self._run(self._by_phase[phase], periods)
        if self._every:  # after the firing's packets went out
            self._run(self._every, 1)
        if self.receiver is not None:
            try:
                self.receiver.poll()
            except Exception:  # the receiver guards its handlers; this is a last resort
                log.err(None, "media clock: receive poll failed")
            self.batch.flush()  # what was relayed on arrival during the poll

    def _run(self, streams: list, count: int) -> None:
        if not streams:
            return
        self.ticks += 1
        if count > 1:
            self.late_ticks += 1
            self.missed_intervals += count - 1
        rest = None
        for stream in list(streams):
            try:
                more = stream.tick(count)
            except Exception:
                self.stream_errors += 1
                log.err(None, f"media clock: stream {stream!r} failed in tick")
                continue
            if more is not None:
                if rest is None:
                    rest = []
                rest.append(more)
        self._flush()  # the phase's packets, together
        if rest is not None:  # after the firing's other packets went out
            for more in rest:
                try:
                    more()
                except Exception:
                    self.stream_errors += 1
                    log.err(None, f"media clock: the rest of a tick failed ({more!r})")
            self._flush()

    def _flush(self) -> None:
        try:
            self.batch.flush()
        except Exception:  # counted per packet inside; this is a last resort
            log.err(None, "media clock: sending the firing's packets failed")

    def metrics(self) -> dict:
        return {"ticks": self.ticks, "late_ticks": self.late_ticks, "phases": self.phases,
                "missed_intervals": self.missed_intervals, "streams": len(self._streams),
                "stream_errors": self.stream_errors, "socket_io": self.batch.io.name,
                "send_calls": self.batch.flushes, "batched_packets": self.batch.packets}
