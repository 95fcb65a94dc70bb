"""The UAS core's 2xx retransmission (RFC 3261 13.3.1.4), as a pure state machine.

The INVITE server transaction sends a 2xx once (RFC 6026 Accepted state); the UA core
keeps re-sending it until the ACK arrives: first after T1, the interval doubling up to
T2.  If no ACK has arrived 64*T1 after the first send, :class:`NoAck` tells the UA core
to confirm and then end the session with BYE (13.3.1.4).  Same action classes as
:mod:`ivr.sip.transaction`; no clock, no Twisted.

Only one timer is ever outstanding (a UA core can keep it in one slot); the schedule is
:class:`ivr.sip.retransmit.Retransmitter`'s, with ``ACK_WAIT_2XX`` as the wait timer.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from .message import Response
from .timers import TimerConfig, TimerName
from .retransmit import Retransmitter
from .transaction import Action, TransactionError

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


class TwoXXRetransmitter(Retransmitter):
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
        (RetransmitState.WAITING, _Input.ACK): ("_on_acknowledged", RetransmitState.ACKED),
        (RetransmitState.ACKED, _Input.ACK): ("_nothing", RetransmitState.ACKED),
        (RetransmitState.GAVE_UP, _Input.ACK): ("_nothing", RetransmitState.GAVE_UP),
    }

    WHAT = "2xx retransmitter"
    RETRANSMIT = RETRANSMIT
    WAIT = ACK_WAIT

    def __init__(self, response: Response, timers: TimerConfig = TimerConfig(),
                 reliable: bool = False) -> None:
        if not 200 <= response.status < 300:
            raise TransactionError(f"TwoXXRetransmitter needs a 2xx, not {response.status}")
        super().__init__(response, timers, reliable, cap=timers.t2,
                         initial_state=RetransmitState.IDLE)

    def start(self) -> list[Action]:
        return self._fire(_Input.START)

    def ack_received(self) -> list[Action]:
        return self._fire(_Input.ACK)

    @property
    def done(self) -> bool:
        return self.state in (RetransmitState.ACKED, RetransmitState.GAVE_UP)

    def _give_up_action(self):
        return NoAck()
