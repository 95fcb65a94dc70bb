"""The UAS core's 2xx retransmission (RFC 3261 13.3.1.4), as a pure state machine.

The INVITE server transaction sends a 2xx once (RFC 6026 Accepted state); the UA core
keeps re-sending it until the ACK arrives: first after T1, the interval doubling up to
T2.  If no ACK has arrived 64*T1 after the first send, :class:`NoAck` tells the UA core
to confirm and then end the session with BYE (13.3.1.4).  Same action classes as
:mod:`ivr.sip.transaction`; no clock, no Twisted.

Only one timer is ever outstanding (a UA core can keep it in one slot): the
retransmit timer, whose last interval is shortened so that it ends exactly at 64*T1,
where it is started under the name ``ACK_WAIT_2XX`` instead.  The machine adds up the
intervals it asked for, so it knows the deadline without reading a clock.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from .message import Response
from .timers import TimerConfig, TimerName
from .transaction import Action, CancelTimer, Send, StartTimer, TransactionError

RETRANSMIT = TimerName.RETRANSMIT_2XX
ACK_WAIT = TimerName.ACK_WAIT_2XX


@dataclass(frozen=True)
class NoAck:
    """64*T1 passed without an ACK for the 2xx: the UA core should send BYE."""


class RetransmitState(enum.Enum):
    IDLE = "Idle"
    WAITING = "Waiting for ACK"
    ACKED = "ACKed"
    GAVE_UP = "Gave up"


class _Input(enum.Enum):
    START = "start"
    ACK = "ACK"


class TwoXXRetransmitter:
    """Re-send ``response`` (a 2xx to an INVITE) until :meth:`ack_received`.

    ``reliable=True`` sends it once and only waits for the ACK: RFC 3261 asks the UAS
    core to retransmit even over TCP (a proxy downstream may be on UDP), so the default
    is to retransmit; pass ``reliable=True`` only when the peer is known to be the UAC.
    """

    TABLE = {
        (RetransmitState.IDLE, _Input.START): ("_on_start", RetransmitState.WAITING),
        (RetransmitState.WAITING, RETRANSMIT): ("_on_retransmit", RetransmitState.WAITING),
        (RetransmitState.WAITING, ACK_WAIT): ("_on_give_up", RetransmitState.GAVE_UP),
        (RetransmitState.ACKED, RETRANSMIT): ("_nothing", RetransmitState.ACKED),  # raced
        (RetransmitState.ACKED, ACK_WAIT): ("_nothing", RetransmitState.ACKED),
        (RetransmitState.WAITING, _Input.ACK): ("_on_ack", RetransmitState.ACKED),
        (RetransmitState.ACKED, _Input.ACK): ("_nothing", RetransmitState.ACKED),
        (RetransmitState.GAVE_UP, _Input.ACK): ("_nothing", RetransmitState.GAVE_UP),
    }

    def __init__(self, response: Response, timers: TimerConfig = TimerConfig(),
                 reliable: bool = False) -> None:
        if not 200 <= response.status < 300:
            raise TransactionError(f"TwoXXRetransmitter needs a 2xx, not {response.status}")
        self.response = response
        self.timers = timers
        self.reliable = reliable
        self.interval = timers.t1
        self.elapsed = 0.0  # sum of the timer delays started so far
        self.current: TimerName | None = None  # the one outstanding timer
        self.state = RetransmitState.IDLE

    def start(self) -> list[Action]:
        return self._fire(_Input.START)

    def ack_received(self) -> list[Action]:
        return self._fire(_Input.ACK)

    def timer_fired(self, name: TimerName) -> list[Action]:
        return self._fire(name)

    @property
    def done(self) -> bool:
        return self.state in (RetransmitState.ACKED, RetransmitState.GAVE_UP)

    def _fire(self, event) -> list[Action]:
        entry = self.TABLE.get((self.state, event))
        if entry is None:
            raise TransactionError(f"2xx retransmitter: {event.value} not allowed in "
                                   f"state {self.state.value}")
        handler, next_state = entry
        actions = getattr(self, handler)()
        self.state = next_state
        return actions

    def _next_timer(self) -> list:
        """Start the retransmit timer, or the ACK wait if that comes first."""
        remaining = self.timers.timeout - self.elapsed
        if self.reliable or self.interval >= remaining:
            self.current, delay = ACK_WAIT, remaining
        else:
            self.current, delay = RETRANSMIT, self.interval
        self.elapsed += delay
        return [StartTimer(self.current, delay)]

    def _on_start(self) -> list:
        return [Send(self.response)] + self._next_timer()

    def _on_retransmit(self) -> list:
        self.interval = min(2 * self.interval, self.timers.t2)
        return [Send(self.response)] + self._next_timer()

    def _on_give_up(self) -> list:
        self.current = None
        return [NoAck()]

    def _on_ack(self) -> list:
        current, self.current = self.current, None
        return [CancelTimer(current)] if current is not None else []

    def _nothing(self) -> list:
        return []
