"""Back-to-back bridge of two answered legs, media relayed through the server.

Each side's decoded audio frames are queued for the other side's next media-clock tick
(so codecs may differ: PCMU on one leg, PCMA on the other).  The queue is a small jitter
buffer: it holds at most ``MAX_FRAMES`` (older frames are dropped so latency stays
bounded) and plays silence when empty.  Digits from one side are re-sent to the other as
RFC 4733 events when that side negotiated telephone-event.  When either leg ends, the
other is hung up and the bridge's Deferred fires with the reason.
"""
from __future__ import annotations

from collections import deque

import numpy as np
from twisted.internet import defer
from twisted.logger import Logger

log = Logger(namespace="ivr.call.bridge")

MAX_FRAMES = 6  # 120 ms
_SILENCE = np.zeros(160, dtype=np.int16)
_SILENCE.setflags(write=False)


class RelaySource:
    """A never-ending playback source fed by the other leg's audio listener."""

    def __init__(self) -> None:
        self.frames: deque = deque(maxlen=MAX_FRAMES)
        self.relayed = 0
        self.underruns = 0

    def push(self, frame: np.ndarray) -> None:
        self.frames.append(frame)

    def read_frame(self) -> np.ndarray:
        if self.frames:
            self.relayed += 1
            return self.frames.popleft()
        self.underruns += 1
        return _SILENCE


class Bridge:
    def __init__(self, a, b) -> None:
        self.a, self.b = a, b
        self.done = defer.Deferred()
        self.to_a, self.to_b = RelaySource(), RelaySource()
        self._listeners = []
        self.ended_by: str | None = None

    def start(self) -> defer.Deferred:
        for leg, source, other in ((self.a, self.to_a, self.b), (self.b, self.to_b, self.a)):
            rtp = leg._ensure_rtp()
            rtp.stop_playback("bridged")
            rtp.play(source).addErrback(lambda f: None)
            other_rtp = other._ensure_rtp()
            other_rtp.add_audio_listener(source.push)
            digit_cb = self._digit_forwarder(leg)
            other.add_digit_listener(digit_cb)
            self._listeners.append((other, other_rtp, source.push, digit_cb))
            leg.when_ended().addCallback(self._leg_ended, leg)
        log.info("bridged {a} <-> {b}", a=self.a.call_id, b=self.b.call_id)
        return self.done

    def _digit_forwarder(self, leg):
        def forward(digit: str) -> None:
            negotiated = leg.negotiated
            if negotiated is not None and negotiated.telephone_event_pt is not None and leg.rtp:
                leg.rtp.send_dtmf(digit).addErrback(lambda f: None)
        return forward

    def _leg_ended(self, reason, leg) -> None:
        if self.done.called:
            return
        self.ended_by = leg.call_id
        for other, rtp, push, digit_cb in self._listeners:
            rtp.remove_audio_listener(push)
            other.remove_digit_listener(digit_cb)
        other = self.b if leg is self.a else self.a
        if not other.ended:
            other.hangup("bridge-peer-hangup")
        self.done.callback(reason)
