"""The digits a call leg has received, from wherever they came.

DTMF arrives three ways and is buffered once: RFC 4733 events from the RTP session, SIP
INFO (application/dtmf-relay, application/dtmf) and in-band tones.  The media leg runs the
in-band detector only when telephone-event was not negotiated, so a phone that sends both
RFC 4733 and tones never produces a digit twice.

A digit goes, in this order, to the observer (the call's path log and metrics), to every
listener (recording, echo, bridge), then to the one ``next_digit`` waiting for it or else
into the buffer, and last to the playback it barges in on.
"""
from __future__ import annotations

from typing import Callable

from twisted.internet import defer

from .interface import CallEnded

DIGITS = frozenset("0123456789*#ABCD")
MODES = ("rfc4733", "info", "inband")


class DigitBuffer:
    def __init__(self, clock, observe: Callable[[str, str], None] | None = None) -> None:
        self.clock = clock  # IReactorTime: next_digit's timeout
        self._observe = observe
        self._digits: list[str] = []  # a few keys at most: a list (an empty deque holds a 600-byte block)
        self._waiter: defer.Deferred | None = None
        self._timer = None
        self._listeners: list[Callable[[str], None]] = []
        self.barge_in: Callable[[str], None] | None = None  # the playback a digit stops
        self.by_mode = dict.fromkeys(MODES, 0)
        self.closed_reason: str | None = None
        self.closed = False

    def push(self, digit: str, mode: str) -> bool:
        """A digit received by ``mode``; False (and nothing happens) when it is not a DTMF
        digit or the buffer is closed."""
        if self.closed or digit not in DIGITS or mode not in self.by_mode:
            return False
        self.by_mode[mode] += 1
        if self._observe is not None:
            self._observe(digit, mode)
        for listener in list(self._listeners):
            listener(digit)
        if self._waiter is not None:
            waiter, self._waiter = self._waiter, None
            self._cancel_timer()
            waiter.callback(digit)
        else:
            self._digits.append(digit)
        if self.barge_in is not None:
            self.barge_in(digit)
        return True

    def first(self) -> str | None:
        """The oldest buffered digit, left in the buffer."""
        return self._digits[0] if self._digits else None

    def add_listener(self, cb: Callable[[str], None]) -> None:
        self._listeners.append(cb)

    def remove_listener(self, cb: Callable[[str], None]) -> None:
        if cb in self._listeners:
            self._listeners.remove(cb)

    def next_digit(self, timeout: float) -> defer.Deferred:
        """The oldest buffered digit, else the next one to arrive, else None after
        ``timeout`` seconds; fails with CallEnded once closed and empty."""
        if self._digits:
            return defer.succeed(self._digits.pop(0))
        if self.closed:
            return defer.fail(CallEnded(self.closed_reason))
        d = defer.Deferred()
        self._waiter = d

        def expire():
            if self._waiter is d:
                self._waiter = None
                d.callback(None)

        self._cancel_timer()
        self._timer = self.clock.callLater(timeout, expire)
        return d

    def flush(self) -> None:
        self._digits.clear()

    def close(self, reason: str) -> None:
        """The call ended: no more digits; a waiting ``next_digit`` fails with CallEnded."""
        if self.closed:
            return
        self.closed, self.closed_reason = True, reason
        self._cancel_timer()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.called:
            waiter.errback(CallEnded(reason))

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
