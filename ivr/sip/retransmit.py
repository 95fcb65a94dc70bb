"""Re-send a response until the peer acknowledges it: the shape shared by the UAS core's
2xx retransmission (RFC 3261 13.3.1.4, :mod:`ivr.sip.uas_2xx`) and reliable provisional
responses (RFC 3262 3, :mod:`ivr.sip.prack`).  Pure: actions out, no clock, no Twisted.

Send once, re-send after T1 with the interval doubling (capped at ``cap`` when given), and
give up ``timers.timeout`` (64*T1) after the first send.  Only one timer is outstanding:
the last retransmit interval is shortened so that it ends exactly at the deadline, where
the wait timer is started instead.  Over a reliable transport it only waits.  A subclass
names its states, timers and table, and what giving up means (``_give_up_action``).
"""
from __future__ import annotations

from ..fsm import Machine
from .message import Response
from .timers import TimerConfig
from .transaction import Action, CancelTimer, Send, StartTimer, TransactionError


class Retransmitter(Machine):
    """The shared schedule; the table, states and timer names are the subclass's (an
    event its table does not allow raises :class:`TransactionError`)."""

    WHAT = "retransmitter"  # for the misuse message
    RETRANSMIT = None       # the retransmit timer's name
    WAIT = None             # the give-up timer's name

    def __init__(self, response: Response, timers: TimerConfig, reliable: bool,
                 cap: float | None, initial_state) -> None:
        self.response = response
        self.timers = timers
        self.reliable = reliable
        self.cap = cap
        self.interval = timers.t1
        self.elapsed = 0.0  # sum of the timer delays started so far
        self.current = None  # the one outstanding timer
        self.state = initial_state

    def timer_fired(self, name) -> list[Action]:
        return self._fire(name)

    def _what(self) -> str:
        return self.WHAT

    def _misuse(self, event) -> type[TransactionError]:
        return TransactionError

    def _next_timer(self) -> list:
        """Start the retransmit timer, or the wait timer if the deadline comes first."""
        remaining = self.timers.timeout - self.elapsed
        if self.reliable or self.interval >= remaining:
            self.current, delay = self.WAIT, remaining
        else:
            self.current, delay = self.RETRANSMIT, self.interval
        self.elapsed += delay
        return [StartTimer(self.current, delay)]

    def _on_start(self) -> list:
        return [Send(self.response)] + self._next_timer()

    def _on_retransmit(self) -> list:
        doubled = 2 * self.interval
        self.interval = doubled if self.cap is None else min(doubled, self.cap)
        return [Send(self.response)] + self._next_timer()

    def _on_give_up(self) -> list:
        self.current = None
        return [self._give_up_action()]

    def _on_acknowledged(self) -> list:
        current, self.current = self.current, None
        return [CancelTimer(current)] if current is not None else []

    def _nothing(self) -> list:
        return []

    def _give_up_action(self):
        raise NotImplementedError
