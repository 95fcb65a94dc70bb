"""RFC 3261 section 17 transactions as pure state machines.

Each machine takes events (``start()``, ``receive_response()``, ``receive_request()``,
``send_response()``, ``timer_fired()``, ``transport_error()``) and returns a list of
actions (frozen dataclasses defined here) for the
transaction layer to carry out.  No clock, no sockets, no Twisted (STYLE rule 1).

Every machine has exactly one transition table mapping ``(state, event)`` to
``(handler, next state)``; an event missing from the table raises
:class:`TransactionError` when our own code misused the machine (the TU answered twice,
a timer fired that was never started) and :class:`UnexpectedMessage` when the peer sent
something the state does not allow (the layer logs and drops those).

Timers that are zero on reliable transports (D, I, J, K) are not started at all: the
machine fires them at once through its own table, so the state goes straight to
Terminated exactly as RFC 3261 describes ("zero seconds for reliable transports").

The INVITE server implements RFC 6026's "Accepted" state: a 2xx from the TU moves the
transaction to Accepted for Timer L (64*T1) instead of destroying it, so retransmitted
INVITEs are absorbed rather than seen as new calls, and the UAS core's 2xx
retransmissions (see :mod:`ivr.sip.uas_2xx`) pass through it to the transport.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from ..fsm import Machine, TransitionError
from .message import Request, Response, make_response
from .timers import TimerConfig, TimerName
from .transaction_match import (MAGIC_COOKIE, cancel_target_key, client_key, make_ack,  # noqa: F401
                                make_branch, make_cancel, server_ack_key, server_key)


class TransactionError(TransitionError):
    """Our own misuse of a transaction: an event its state does not allow."""


class UnexpectedMessage(TransactionError):
    """The peer sent a message the transaction's state does not allow (drop it)."""


# -- actions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    message: Request | Response


@dataclass(frozen=True)
class StartTimer:
    name: TimerName
    delay: float


@dataclass(frozen=True)
class CancelTimer:
    name: TimerName


@dataclass(frozen=True)
class PassToTU:
    message: Request | Response


@dataclass(frozen=True)
class Timeout:
    """The transaction timed out: a 408 as far as the TU is concerned."""


@dataclass(frozen=True)
class TransportFailed:
    """The transport could not deliver a message of this transaction."""


@dataclass(frozen=True)
class Terminated:
    """The transaction is over: forget it."""


Action = Send | StartTimer | CancelTimer | PassToTU | Timeout | TransportFailed | Terminated


class Event(enum.Enum):
    START = "start"
    RESPONSE_1XX = "1xx"
    RESPONSE_2XX = "2xx"
    RESPONSE_FINAL = "300-699"
    REQUEST = "request retransmission"
    ACK = "ACK"
    TU_1XX = "1xx from TU"
    TU_2XX = "2xx from TU"
    TU_FINAL = "300-699 from TU"
    TRANSPORT_ERROR = "transport error"


def _response_event(status: int, tu: bool) -> Event:
    if status < 200:
        return Event.TU_1XX if tu else Event.RESPONSE_1XX
    if status < 300:
        return Event.TU_2XX if tu else Event.RESPONSE_2XX
    return Event.TU_FINAL if tu else Event.RESPONSE_FINAL


class State(enum.Enum):
    INIT = "Init"
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"  # RFC 6026
    TERMINATED = "Terminated"


Table = dict[tuple[State, "Event | TimerName"], tuple[str, State]]

#: Events that come from the peer: one the state does not allow is UnexpectedMessage.
_PEER_EVENTS = frozenset({Event.RESPONSE_1XX, Event.RESPONSE_2XX, Event.RESPONSE_FINAL,
                          Event.REQUEST, Event.ACK})


class _Transaction(Machine):
    """Shared dispatch (:class:`ivr.fsm.Machine`): look the event up in the subclass's one
    table, run the handler, move to the next state, then fire any zero-length timer the
    handler asked for."""

    TABLE: ClassVar[Table] = {}

    def __init__(self, request: Request, timers: TimerConfig = TimerConfig(),
                 reliable: bool = False) -> None:
        self.request = request
        self.timers = timers
        self.reliable = reliable
        self.state = State.INIT
        self._immediate: list[TimerName] = []

    def _fire(self, event: Event | TimerName, message=None) -> list[Action]:
        actions = super()._fire(event, message)
        while self._immediate:
            actions += self._fire(self._immediate.pop(0))
        return actions

    def _misuse(self, event) -> type[TransactionError]:
        return UnexpectedMessage if event in _PEER_EVENTS else TransactionError

    def _wait(self, name: TimerName, unreliable_delay: float) -> list[Action]:
        """Start a timer that is zero on reliable transports (D, I, J, K)."""
        if self.reliable or unreliable_delay <= 0:
            self._immediate.append(name)
            return []
        return [StartTimer(name, unreliable_delay)]

    def timer_fired(self, name: TimerName) -> list[Action]:
        return self._fire(name)

    def transport_error(self) -> list[Action]:
        return self._fire(Event.TRANSPORT_ERROR)

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    # handlers shared by several machines
    def _nothing(self, _message) -> list[Action]:
        return []

    def _terminate(self, _message) -> list[Action]:
        return [Terminated()]

    def _pass(self, message) -> list[Action]:
        return [PassToTU(message)]

    def _pass_and_end(self, message) -> list[Action]:
        return [PassToTU(message), Terminated()]


# -- client transactions (17.1) ----------------------------------------------------------


class _ClientTransaction(_Transaction):
    RETRANSMIT: ClassVar[TimerName]
    TIMEOUT: ClassVar[TimerName]

    def __init__(self, request: Request, timers: TimerConfig = TimerConfig(),
                 reliable: bool = False) -> None:
        super().__init__(request, timers, reliable)
        self.interval = timers.t1
        self.key = client_key(request)

    def start(self) -> list[Action]:
        return self._fire(Event.START)

    def receive_response(self, response: Response) -> list[Action]:
        return self._fire(_response_event(response.status, tu=False), response)

    def _on_start(self, _message) -> list[Action]:
        actions: list[Action] = [Send(self.request)]
        if not self.reliable:
            actions.append(StartTimer(self.RETRANSMIT, self.interval))
        actions.append(StartTimer(self.TIMEOUT, self.timers.timeout))
        return actions

    def _stop_timers(self) -> list[Action]:
        stop: list[Action] = [] if self.reliable else [CancelTimer(self.RETRANSMIT)]
        return stop + [CancelTimer(self.TIMEOUT)]

    def _on_timeout(self, _message) -> list[Action]:
        stop = [] if self.reliable else [CancelTimer(self.RETRANSMIT)]
        return stop + [Timeout(), Terminated()]

    def _on_transport_error(self, _message) -> list[Action]:
        return self._stop_timers() + [TransportFailed(), Terminated()]


class InviteClientTransaction(_ClientTransaction):
    """RFC 3261 17.1.1, Figure 5.  The TU ACKs 2xx itself; non-2xx are ACKed here."""

    RETRANSMIT, TIMEOUT = TimerName.A, TimerName.B

    def _on_timer_a(self, _message) -> list[Action]:
        self.interval *= 2  # uncapped for INVITE (17.1.1.2)
        return [Send(self.request), StartTimer(TimerName.A, self.interval)]

    def _on_provisional(self, response) -> list[Action]:
        return self._stop_timers() + [PassToTU(response)]

    def _on_2xx(self, response) -> list[Action]:
        return self._stop_timers() + [PassToTU(response), Terminated()]

    def _on_final(self, response) -> list[Action]:
        self.ack = make_ack(self.request, response)
        return (self._stop_timers() + [Send(self.ack), PassToTU(response)]
                + self._wait(TimerName.D, self.timers.timer_d))

    def _on_final_in_proceeding(self, response) -> list[Action]:
        self.ack = make_ack(self.request, response)
        return [Send(self.ack), PassToTU(response)] + self._wait(TimerName.D, self.timers.timer_d)

    def _resend_ack(self, _response) -> list[Action]:
        return [Send(self.ack)]

    def _on_transport_error_late(self, _message) -> list[Action]:
        return [CancelTimer(TimerName.D), TransportFailed(), Terminated()]


InviteClientTransaction.TABLE = {
    (State.INIT, Event.START): ("_on_start", State.CALLING),
    (State.CALLING, TimerName.A): ("_on_timer_a", State.CALLING),
    (State.CALLING, TimerName.B): ("_on_timeout", State.TERMINATED),
    (State.CALLING, Event.TRANSPORT_ERROR): ("_on_transport_error", State.TERMINATED),
    (State.CALLING, Event.RESPONSE_1XX): ("_on_provisional", State.PROCEEDING),
    (State.CALLING, Event.RESPONSE_2XX): ("_on_2xx", State.TERMINATED),
    (State.CALLING, Event.RESPONSE_FINAL): ("_on_final", State.COMPLETED),
    (State.PROCEEDING, Event.RESPONSE_1XX): ("_pass", State.PROCEEDING),
    (State.PROCEEDING, Event.RESPONSE_2XX): ("_pass_and_end", State.TERMINATED),
    (State.PROCEEDING, Event.RESPONSE_FINAL): ("_on_final_in_proceeding", State.COMPLETED),
    (State.COMPLETED, Event.RESPONSE_FINAL): ("_resend_ack", State.COMPLETED),
    (State.COMPLETED, Event.RESPONSE_1XX): ("_nothing", State.COMPLETED),  # late, reordered
    (State.COMPLETED, Event.TRANSPORT_ERROR): ("_on_transport_error_late", State.TERMINATED),
    (State.COMPLETED, TimerName.D): ("_terminate", State.TERMINATED),
}


class NonInviteClientTransaction(_ClientTransaction):
    """RFC 3261 17.1.2, Figure 6."""

    RETRANSMIT, TIMEOUT = TimerName.E, TimerName.F

    def _on_timer_e(self, _message) -> list[Action]:
        self.interval = min(2 * self.interval, self.timers.t2)
        return [Send(self.request), StartTimer(TimerName.E, self.interval)]

    def _on_timer_e_proceeding(self, _message) -> list[Action]:
        self.interval = self.timers.t2
        return [Send(self.request), StartTimer(TimerName.E, self.interval)]

    def _on_final(self, response) -> list[Action]:
        return (self._stop_timers() + [PassToTU(response)]
                + self._wait(TimerName.K, self.timers.t4))


NonInviteClientTransaction.TABLE = {
    (State.INIT, Event.START): ("_on_start", State.TRYING),
    (State.TRYING, TimerName.E): ("_on_timer_e", State.TRYING),
    (State.TRYING, TimerName.F): ("_on_timeout", State.TERMINATED),
    (State.TRYING, Event.TRANSPORT_ERROR): ("_on_transport_error", State.TERMINATED),
    (State.TRYING, Event.RESPONSE_1XX): ("_pass", State.PROCEEDING),
    (State.TRYING, Event.RESPONSE_2XX): ("_on_final", State.COMPLETED),
    (State.TRYING, Event.RESPONSE_FINAL): ("_on_final", State.COMPLETED),
    (State.PROCEEDING, TimerName.E): ("_on_timer_e_proceeding", State.PROCEEDING),
    (State.PROCEEDING, TimerName.F): ("_on_timeout", State.TERMINATED),
    (State.PROCEEDING, Event.TRANSPORT_ERROR): ("_on_transport_error", State.TERMINATED),
    (State.PROCEEDING, Event.RESPONSE_1XX): ("_pass", State.PROCEEDING),
    (State.PROCEEDING, Event.RESPONSE_2XX): ("_on_final", State.COMPLETED),
    (State.PROCEEDING, Event.RESPONSE_FINAL): ("_on_final", State.COMPLETED),
    (State.COMPLETED, Event.RESPONSE_1XX): ("_nothing", State.COMPLETED),
    (State.COMPLETED, Event.RESPONSE_2XX): ("_nothing", State.COMPLETED),
    (State.COMPLETED, Event.RESPONSE_FINAL): ("_nothing", State.COMPLETED),
    (State.COMPLETED, TimerName.K): ("_terminate", State.TERMINATED),
}


# -- server transactions (17.2) ----------------------------------------------------------


class _ServerTransaction(_Transaction):
    def __init__(self, request: Request, timers: TimerConfig = TimerConfig(),
                 reliable: bool = False) -> None:
        super().__init__(request, timers, reliable)
        self.key = server_key(request)
        self.last_response: Response | None = None

    def start(self) -> list[Action]:
        return self._fire(Event.START)

    def receive_request(self, request: Request) -> list[Action]:
        return self._fire(Event.ACK if request.method == "ACK" else Event.REQUEST, request)

    def send_response(self, response: Response) -> list[Action]:
        return self._fire(_response_event(response.status, tu=True), response)

    def _send(self, response) -> list[Action]:
        self.last_response = response
        return [Send(response)]

    def _resend(self, _request) -> list[Action]:
        return [Send(self.last_response)] if self.last_response is not None else []

    def _on_transport_error(self, _message) -> list[Action]:
        return [TransportFailed(), Terminated()]


class InviteServerTransaction(_ServerTransaction):
    """RFC 3261 17.2.1, Figure 7, with RFC 6026's Accepted state (Timer L)."""

    def __init__(self, request: Request, timers: TimerConfig = TimerConfig(),
                 reliable: bool = False) -> None:
        super().__init__(request, timers, reliable)
        self.interval = timers.t1

    def _on_start(self, request) -> list[Action]:
        # Always 100 Trying at once (17.2.1 allows skipping it when the TU answers within
        # 200 ms; sending it unconditionally is simpler and always correct).
        return self._send(make_response(self.request, 100)) + [PassToTU(self.request)]

    def _on_final(self, response) -> list[Action]:
        actions = self._send(response)
        if not self.reliable:
            actions.append(StartTimer(TimerName.G, self.interval))
        return actions + [StartTimer(TimerName.H, self.timers.timeout)]

    def _on_2xx(self, response) -> list[Action]:
        # Accepted never re-sends on its own (the UAS core retransmits the 2xx), so the
        # transaction lets go of it and of the 100 Trying: it lingers for Timer L holding
        # as little as possible.
        self.last_response = None
        return [Send(response), StartTimer(TimerName.L, self.timers.timeout)]

    def _send_through(self, response) -> list[Action]:
        return [Send(response)]

    def _on_timer_g(self, _message) -> list[Action]:
        self.interval = min(2 * self.interval, self.timers.t2)
        return [Send(self.last_response), StartTimer(TimerName.G, self.interval)]

    def _on_timer_h(self, _message) -> list[Action]:
        stop = [] if self.reliable else [CancelTimer(TimerName.G)]
        return stop + [Timeout(), Terminated()]

    def _on_ack(self, _ack) -> list[Action]:
        stop = [] if self.reliable else [CancelTimer(TimerName.G)]
        return stop + [CancelTimer(TimerName.H)] + self._wait(TimerName.I, self.timers.t4)

    def _on_transport_error_completed(self, _message) -> list[Action]:
        stop = [] if self.reliable else [CancelTimer(TimerName.G)]
        return stop + [CancelTimer(TimerName.H), TransportFailed(), Terminated()]

    def _on_transport_error_accepted(self, _message) -> list[Action]:
        return [TransportFailed()]


InviteServerTransaction.TABLE = {
    (State.INIT, Event.START): ("_on_start", State.PROCEEDING),
    (State.PROCEEDING, Event.REQUEST): ("_resend", State.PROCEEDING),
    (State.PROCEEDING, Event.TU_1XX): ("_send", State.PROCEEDING),
    (State.PROCEEDING, Event.TU_2XX): ("_on_2xx", State.ACCEPTED),
    (State.PROCEEDING, Event.TU_FINAL): ("_on_final", State.COMPLETED),
    (State.PROCEEDING, Event.TRANSPORT_ERROR): ("_on_transport_error", State.TERMINATED),
    (State.COMPLETED, Event.REQUEST): ("_resend", State.COMPLETED),
    (State.COMPLETED, Event.ACK): ("_on_ack", State.CONFIRMED),
    (State.COMPLETED, TimerName.G): ("_on_timer_g", State.COMPLETED),
    (State.COMPLETED, TimerName.H): ("_on_timer_h", State.TERMINATED),
    (State.COMPLETED, Event.TRANSPORT_ERROR): ("_on_transport_error_completed", State.TERMINATED),
    (State.CONFIRMED, Event.ACK): ("_nothing", State.CONFIRMED),
    (State.CONFIRMED, Event.REQUEST): ("_nothing", State.CONFIRMED),
    (State.CONFIRMED, TimerName.I): ("_terminate", State.TERMINATED),
    # RFC 6026 7.1: INVITE retransmissions absorbed, the TU's 2xx retransmissions sent,
    # an ACK that matches (RFC 2543 peers reuse the branch) goes up to the TU.
    (State.ACCEPTED, Event.REQUEST): ("_nothing", State.ACCEPTED),
    (State.ACCEPTED, Event.TU_2XX): ("_send_through", State.ACCEPTED),
    (State.ACCEPTED, Event.ACK): ("_pass", State.ACCEPTED),
    (State.ACCEPTED, Event.TRANSPORT_ERROR): ("_on_transport_error_accepted", State.ACCEPTED),
    (State.ACCEPTED, TimerName.L): ("_terminate", State.TERMINATED),
}


class NonInviteServerTransaction(_ServerTransaction):
    """RFC 3261 17.2.2, Figure 8."""

    def _on_start(self, request) -> list[Action]:
        return [PassToTU(self.request)]

    def _on_final(self, response) -> list[Action]:
        return self._send(response) + self._wait(TimerName.J, self.timers.timeout)

    def _on_transport_error_completed(self, _message) -> list[Action]:
        return [CancelTimer(TimerName.J), TransportFailed(), Terminated()]


NonInviteServerTransaction.TABLE = {
    (State.INIT, Event.START): ("_on_start", State.TRYING),
    (State.TRYING, Event.REQUEST): ("_nothing", State.TRYING),
    (State.TRYING, Event.TU_1XX): ("_send", State.PROCEEDING),
    (State.TRYING, Event.TU_2XX): ("_on_final", State.COMPLETED),
    (State.TRYING, Event.TU_FINAL): ("_on_final", State.COMPLETED),
    (State.PROCEEDING, Event.REQUEST): ("_resend", State.PROCEEDING),
    (State.PROCEEDING, Event.TU_1XX): ("_send", State.PROCEEDING),
    (State.PROCEEDING, Event.TU_2XX): ("_on_final", State.COMPLETED),
    (State.PROCEEDING, Event.TU_FINAL): ("_on_final", State.COMPLETED),
    (State.PROCEEDING, Event.TRANSPORT_ERROR): ("_on_transport_error", State.TERMINATED),
    (State.COMPLETED, Event.REQUEST): ("_resend", State.COMPLETED),
    (State.COMPLETED, Event.TRANSPORT_ERROR): ("_on_transport_error_completed", State.TERMINATED),
    (State.COMPLETED, TimerName.J): ("_terminate", State.TERMINATED),
}


def client_transaction(request: Request, timers: TimerConfig = TimerConfig(),
                       reliable: bool = False) -> _ClientTransaction:
    cls = InviteClientTransaction if request.method == "INVITE" else NonInviteClientTransaction
    return cls(request, timers, reliable)


def server_transaction(request: Request, timers: TimerConfig = TimerConfig(),
                       reliable: bool = False) -> _ServerTransaction:
    cls = InviteServerTransaction if request.method == "INVITE" else NonInviteServerTransaction
    return cls(request, timers, reliable)


__all__ = [
    "Action", "CancelTimer", "Event", "InviteClientTransaction", "InviteServerTransaction",
    "NonInviteClientTransaction", "NonInviteServerTransaction", "PassToTU", "Send",
    "StartTimer", "State", "Terminated", "Timeout", "TransactionError", "TransportFailed",
    "UnexpectedMessage", "cancel_target_key", "client_key", "client_transaction", "make_ack",
    "make_branch", "make_cancel", "server_ack_key", "server_key",
    "server_transaction",
]
