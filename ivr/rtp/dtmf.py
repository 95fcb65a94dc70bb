"""RFC 4733 telephone-events (DTMF over RTP): payload codec, sender and receiver.

Pure: the receiver is fed packets with their arrival time and polled with the current time.

Sender: one digit becomes one event.  Every packet of the event carries the event's start
timestamp; the first has the marker bit; the duration grows by one packet interval (160
samples at 20 ms) per packet; the final packet (E bit) is sent three times (RFC 4733 2.5.1.4).
Events longer than the 16-bit duration field (8.19 s at 8 kHz) are split into segments, each
with its own timestamp (2.5.1.3): that is what ``timestamp_offset`` carries.

Receiver: emits each digit exactly once, keyed by the event's RTP timestamp, when the first
end packet arrives, or — if every end packet was lost — when a packet of a newer event arrives
or when ``poll(now)`` finds the event silent for ``end_timeout`` seconds.
"""
from __future__ import annotations

import enum
import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterator

from ..fsm import next_state
from .packet import RtpError

__all__ = [
    "DIGITS", "EVENT_FLASH", "TelephoneEvent", "DtmfPacket", "DtmfDigit", "encode_event",
    "decode_event", "event_code", "DtmfSender", "DtmfReceiver",
]

DIGITS = "0123456789*#ABCD"  # event codes 0..15
EVENT_FLASH = 16
MAX_DURATION = 0xFFFF
_EVENT = struct.Struct("!BBH")


def event_code(digit: str | int) -> int:
    """'0'..'9', '*', '#', 'A'..'D' (or an int code 0..255) -> event code; ValueError otherwise."""
    if isinstance(digit, int) and not isinstance(digit, bool):
        if 0 <= digit <= 255:
            return digit
        raise ValueError(f"event code {digit} out of range")
    if isinstance(digit, str) and len(digit) == 1 and digit.upper() in DIGITS:
        return DIGITS.index(digit.upper())
    raise ValueError(f"not a DTMF digit: {digit!r}")


@dataclass(frozen=True)
class TelephoneEvent:
    event: int
    end: bool
    volume: int
    duration: int

    @property
    def digit(self) -> str | None:
        return DIGITS[self.event] if self.event < len(DIGITS) else None


def encode_event(digit: str | int, end: bool, volume: int, duration: int) -> bytes:
    """The 4-octet RFC 4733 payload.  volume is 0..63 (-dBm0), duration in timestamp units."""
    if not 0 <= volume <= 63:
        raise ValueError("volume must be 0..63")
    if not 0 <= duration <= MAX_DURATION:
        raise ValueError("duration must be 0..65535")
    return _EVENT.pack(event_code(digit), (0x80 if end else 0) | volume, duration)


def decode_event(payload: bytes) -> TelephoneEvent:
    """Parse a telephone-event payload (extra octets, e.g. a second event block, are ignored)."""
    if len(payload) < 4:
        raise RtpError(f"telephone-event payload too short ({len(payload)} octets)")
    event, flags, duration = _EVENT.unpack_from(payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


# ---------------------------------------------------------------------------- sender
@dataclass(frozen=True)
class DtmfPacket:
    payload: bytes
    marker: bool
    timestamp_offset: int  # add to the timestamp at which the event started
    end: bool


class DtmfSender:
    """The packets of one digit, one per packet interval (iterate, or call ``packets()``)."""

    def __init__(self, digit: str | int, duration_ms: int = 100, volume: int = 10,
                 packet_ms: int = 20, clock_rate: int = 8000, end_repeats: int = 3) -> None:
        self.code = event_code(digit)
        if duration_ms <= 0 or packet_ms <= 0:
            raise ValueError("duration_ms and packet_ms must be positive")
        if not 0 <= volume <= 63:
            raise ValueError("volume must be 0..63")
        self.volume = volume
        self.step = clock_rate * packet_ms // 1000
        total = clock_rate * duration_ms // 1000
        self.total = max(self.step, -(-total // self.step) * self.step)  # whole packets
        self.end_repeats = end_repeats

    def __iter__(self) -> Iterator[DtmfPacket]:
        return self.packets()

    def packets(self) -> Iterator[DtmfPacket]:
        max_segment = (MAX_DURATION // self.step) * self.step
        elapsed = 0
        segment_start = 0
        first = True
        while elapsed < self.total:
            elapsed += self.step
            duration = elapsed - segment_start
            if elapsed < self.total:
                if duration > max_segment:  # close this segment, start the next one
                    segment_start += max_segment
                    duration = elapsed - segment_start
                    first = True
                yield DtmfPacket(encode_event(self.code, False, self.volume, duration),
                                 first, segment_start, False)
                first = False
        final = min(self.total - segment_start, MAX_DURATION)
        payload = encode_event(self.code, True, self.volume, final)
        for i in range(self.end_repeats):
            yield DtmfPacket(payload, first and i == 0, segment_start, True)


# ---------------------------------------------------------------------------- receiver
@dataclass(frozen=True)
class DtmfDigit:
    digit: str
    timestamp: int  # RTP timestamp of the event (the receiver's key)
    duration: int  # longest duration seen, in timestamp units
    reason: str  # 'end', 'next-event' or 'timeout'


class _State(enum.Enum):
    IDLE = "idle"
    IN_EVENT = "in-event"


class _Input(enum.Enum):
    UPDATE = "update"  # non-end packet of the open event, or the first of a new one
    END = "end"  # end packet of the open event
    NEW_EVENT = "new-event"  # packet of a newer event while one is open (its end was lost)
    OLD_END = "old-end"  # late end packet of an older event that was never seen open
    TIMEOUT = "timeout"


_TRANSITIONS: dict[tuple[_State, _Input], _State] = {
    (_State.IDLE, _Input.UPDATE): _State.IN_EVENT,
    (_State.IN_EVENT, _Input.UPDATE): _State.IN_EVENT,
    (_State.IN_EVENT, _Input.END): _State.IDLE,
    (_State.IN_EVENT, _Input.NEW_EVENT): _State.IDLE,  # emit the open one, then take the new
    (_State.IN_EVENT, _Input.OLD_END): _State.IN_EVENT,
    (_State.IN_EVENT, _Input.TIMEOUT): _State.IDLE,
}


def _ts_before(a: int, b: int) -> bool:
    """a is earlier than b in 32-bit RTP timestamp arithmetic."""
    return a != b and ((b - a) & 0xFFFFFFFF) < 0x80000000


class DtmfSendQueue:
    """RFC 4733 events waiting to go out on one stream, one packet per media tick.

    Each queued event may carry a ``done`` token (anything: the session uses a Deferred),
    handed back by :meth:`sent` once the event's last end packet went out.  Between two
    events the stream sends ``gap_ticks`` ticks of audio, so that a receiver sees separate
    key presses.  Pure: no clock, no I/O.
    """

    def __init__(self, gap_ticks: int = 3) -> None:
        self.gap_ticks = max(0, gap_ticks)
        self._queue: list = []  # a few events at most: a list (an empty deque holds a 600-byte block)
        self._packets: list[DtmfPacket] | None = None  # the event being sent
        self._index = 0
        self._event_ts = 0
        self._done = None
        self._gap = 0
        #: Nothing to send and no gap to wait out.  An attribute, not a property: the
        #: session reads it on every tick of every stream, and it changes only here.
        self.idle = True

    def _update_idle(self) -> None:
        self.idle = self._packets is None and not self._queue and self._gap <= 0

    def add(self, code: int, duration_ms: int, done=None) -> None:
        self._queue.append((code, duration_ms, done))
        self.idle = False

    def next_packet(self, timestamp: int) -> tuple[bytes, bool, int] | None:
        """(payload, marker, RTP timestamp) to send on this tick, or None for audio.  A new
        event starts at ``timestamp`` (the stream's current one)."""
        if self._packets is None:
            if self._gap > 0:
                self._gap -= 1
                self._update_idle()
                return None
            if not self._queue:
                return None
            code, duration_ms, self._done = self._queue.pop(0)
            self._packets = list(DtmfSender(code, duration_ms=duration_ms))
            self._index = 0
            self._event_ts = timestamp
        pkt = self._packets[self._index]
        return pkt.payload, pkt.marker, (self._event_ts + pkt.timestamp_offset) & 0xFFFFFFFF

    def sent(self) -> tuple[bool, object]:
        """The packet from :meth:`next_packet` went out: (did an event just end, its token)."""
        self._index += 1
        if self._index < len(self._packets):
            return False, None
        self._packets = None
        self._gap = self.gap_ticks
        self._update_idle()
        done, self._done = self._done, None
        return True, done

    def clear(self) -> list:
        """Drop everything; the tokens of the events that will never be sent."""
        pending = [done for _code, _ms, done in self._queue if done is not None]
        if self._done is not None:
            pending.append(self._done)
        self._queue.clear()
        self._packets = self._done = None
        self._gap = 0
        self.idle = True
        return pending


class DtmfReceiver:
    def __init__(self, end_timeout: float = 0.5, remember: int = 64) -> None:
        self.end_timeout = end_timeout
        self._remember = remember
        self._state = _State.IDLE
        self._done: OrderedDict[int, None] = OrderedDict()  # recently finished event timestamps
        self._ts = 0  # timestamp of the open segment
        self._first_ts = 0  # timestamp of the event's first segment (the reported key)
        self._carried = 0  # duration of earlier segments of a long event
        self._code = 0
        self._duration = 0
        self._last_arrival = 0.0
        self.ignored = 0  # packets dropped: malformed, unknown events, repeats, stragglers

    @property
    def state(self) -> str:
        return self._state.value

    def _go(self, inp: _Input) -> None:
        self._state = next_state(_TRANSITIONS, self._state, inp, what="RFC 4733 receiver")

    def _finish(self, ts: int) -> None:
        self._done[ts] = None
        while len(self._done) > self._remember:
            self._done.popitem(last=False)

    def _emit_open(self, reason: str, end_duration: int = 0) -> DtmfDigit:
        self._finish(self._ts)
        return DtmfDigit(DIGITS[self._code], self._first_ts,
                         self._carried + max(self._duration, end_duration), reason)

    def _open(self, timestamp: int, ev: TelephoneEvent, arrival: float) -> None:
        self._ts = self._first_ts = timestamp
        self._code, self._duration, self._carried = ev.event, ev.duration, 0
        self._last_arrival = arrival

    def feed(self, timestamp: int, seq: int, payload: bytes, arrival: float) -> list[DtmfDigit]:
        """One received telephone-event RTP packet; returns digits completed by it (0, 1 or 2).

        ``seq`` is accepted for symmetry with the RTP layer; ordering is judged by timestamp.
        """
        try:
            ev = decode_event(payload)
        except RtpError:
            self.ignored += 1
            return []
        if ev.event >= len(DIGITS) or timestamp in self._done:
            self.ignored += 1  # flash/other events, or a repeat of a finished event
            return []
        out: list[DtmfDigit] = []
        if self._state is _State.IN_EVENT and timestamp != self._ts:
            if _ts_before(timestamp, self._ts):
                if not ev.end:
                    self.ignored += 1  # straggler of an older event
                    return []
                self._finish(timestamp)
                self._go(_Input.OLD_END)
                return [DtmfDigit(DIGITS[ev.event], timestamp, ev.duration, "end")]
            if ev.event == self._code and timestamp == (self._ts + self._duration) & 0xFFFFFFFF:
                # next segment of a long event (RFC 4733 2.5.1.3): same digit, keep it open
                self._finish(self._ts)
                self._carried += self._duration
                self._ts, self._duration = timestamp, 0
            else:
                out.append(self._emit_open("next-event"))
                self._go(_Input.NEW_EVENT)
        if self._state is _State.IDLE:
            self._open(timestamp, ev, arrival)
        else:
            self._duration = max(self._duration, ev.duration)
            self._last_arrival = max(self._last_arrival, arrival)
        self._go(_Input.UPDATE)
        if ev.end:
            out.append(self._emit_open("end", ev.duration))
            self._go(_Input.END)
        return out

    def poll(self, now: float) -> list[DtmfDigit]:
        """Emit the open event if no packet for it arrived within ``end_timeout`` seconds."""
        if self._state is _State.IN_EVENT and now - self._last_arrival >= self.end_timeout:
            self._go(_Input.TIMEOUT)
            return [self._emit_open("timeout")]
        return []
