"""Click-to-call: call the agent, (whisper,) call the customer, bridge them.

One :class:`Session` per request, an explicit state machine over :class:`Telephony`::

    initiated -> ringing_agent -> agent_answered -> [whisper ->] ringing_customer -> bridged
        -> completed          (either side hung up, or max-duration)
    any non-final state -> failed   (agent-busy, agent-no-answer, agent-rejected,
        agent-failed, agent-hangup, customer-busy, customer-no-answer,
        customer-rejected, customer-failed, cancelled, whisper-failed, bridge-failed)

Every state entered is reported once, in order, to ``listener(session, event)`` where
``event`` is ``{"seq", "event" (the state name), "state", "at", ...details}``; the same
events are kept in ``session.events`` for the demo page's polling.
"""
from __future__ import annotations

import enum
import logging
import os
from dataclasses import dataclass
from typing import Callable

from twisted.internet.defer import Deferred

from ..call.telephony import LegFailed, Telephony, UnknownTarget
from ..fsm import TransitionError, next_state

log = logging.getLogger(__name__)


class State(enum.Enum):
    INITIATED = "initiated"
    RINGING_AGENT = "ringing_agent"
    AGENT_ANSWERED = "agent_answered"
    WHISPER = "whisper"
    RINGING_CUSTOMER = "ringing_customer"
    BRIDGED = "bridged"
    COMPLETED = "completed"
    FAILED = "failed"


class Input(enum.Enum):
    DIAL_AGENT = "dial_agent"
    AGENT_ANSWERED = "agent_answered"
    START_WHISPER = "start_whisper"
    DIAL_CUSTOMER = "dial_customer"
    CUSTOMER_ANSWERED = "customer_answered"
    HUNG_UP = "hung_up"          # a bridged leg ended
    MAX_DURATION = "max_duration"
    FAIL = "fail"


S, I = State, Input
_ALIVE = (S.INITIATED, S.RINGING_AGENT, S.AGENT_ANSWERED, S.WHISPER, S.RINGING_CUSTOMER)

#: The one transition table: (state, input) -> next state.
TRANSITIONS: dict[tuple[State, Input], State] = {
    (S.INITIATED, I.DIAL_AGENT): S.RINGING_AGENT,
    (S.RINGING_AGENT, I.AGENT_ANSWERED): S.AGENT_ANSWERED,
    (S.AGENT_ANSWERED, I.START_WHISPER): S.WHISPER,
    (S.AGENT_ANSWERED, I.DIAL_CUSTOMER): S.RINGING_CUSTOMER,
    (S.WHISPER, I.DIAL_CUSTOMER): S.RINGING_CUSTOMER,
    (S.RINGING_CUSTOMER, I.CUSTOMER_ANSWERED): S.BRIDGED,
    (S.BRIDGED, I.HUNG_UP): S.COMPLETED,
    (S.BRIDGED, I.MAX_DURATION): S.COMPLETED,
    **{(s, I.FAIL): S.FAILED for s in _ALIVE},
    (S.BRIDGED, I.FAIL): S.FAILED,
}
FINAL = frozenset({S.COMPLETED, S.FAILED})


class InvalidTransition(TransitionError):
    """Our own bug: an input that the table does not allow in the current state."""


@dataclass(frozen=True)
class Request:
    agent: str                      # resolved target for the agent (URI, extension or E.164)
    customer: str                   # E.164
    caller_id: str | None = None    # shown to the customer
    agent_caller_id: str | None = None  # shown to the agent (default: the customer)
    callback_url: str | None = None
    max_duration: float | None = None
    record: bool = False
    whisper: str | None = None
    agent_timeout: float = 30.0
    customer_timeout: float = 30.0
    recordings_dir: str | None = None


Listener = Callable[["Session", dict], None]


class Session:
    def __init__(self, session_id: str, request: Request, telephony: Telephony, clock,
                 listener: Listener | None = None) -> None:
        self.id = session_id
        self.request = request
        self.telephony = telephony
        self.clock = clock
        self.listener = listener
        self.state = State.INITIATED
        self.reason: str | None = None
        self.hangup_side: str | None = None
        self.events: list[dict] = []
        self.agent = None
        self.customer = None
        self.recordings: dict[str, str] = {}
        self.created_at = clock.seconds()
        self.times: dict[str, float] = {}
        self._max_timer = None
        self._emit(State.INITIATED, {})

    # -- machine ------------------------------------------------------------------

    def _fire(self, inp: Input, **details) -> None:
        nxt = next_state(TRANSITIONS, self.state, inp, what=f"click-to-call {self.id}",
                         error=InvalidTransition)
        self.state = nxt
        self._emit(nxt, details)

    def _emit(self, state: State, details: dict) -> None:
        now = self.clock.seconds()
        self.times.setdefault(state.value, now)
        event = {"seq": len(self.events) + 1, "event": state.value, "state": state.value,
                 "at": now, "session_id": self.id, **details}
        self.events.append(event)
        if self.listener is not None:
            try:
                self.listener(self, event)
            except Exception:
                log.exception("click-to-call listener failed for %s", self.id)

    @property
    def final(self) -> bool:
        return self.state in FINAL

    # -- driving ------------------------------------------------------------------

    def start(self) -> None:
        r = self.request
        try:
            self.agent = self.telephony.originate(
                r.agent, caller_id=r.agent_caller_id or r.customer, timeout=r.agent_timeout)
        except UnknownTarget as exc:
            return self._fail("agent-failed", detail=str(exc))
        self._fire(I.DIAL_AGENT, leg="agent", leg_id=self.agent.id)
        self.agent.when_answered().addCallbacks(self._agent_answered, self._agent_failed)
        self.agent.when_ended().addBoth(self._leg_ended, "agent")

    def cancel(self, reason: str = "cancelled") -> bool:
        """Stop the session (DELETE). False if it had already ended."""
        if self.final:
            return False
        if self.state is State.BRIDGED:
            self.hangup_side = "api"
            self._complete("cancelled")
        else:
            self._fail(reason)
        return True

    def _agent_answered(self, _result) -> None:
        if self.state is not State.RINGING_AGENT:
            return
        self._fire(I.AGENT_ANSWERED, leg="agent", leg_id=self.agent.id)
        if self.request.whisper:
            self._fire(I.START_WHISPER, text=self.request.whisper)
            d = self.agent.say(self.request.whisper)
            d.addCallbacks(lambda _: self._dial_customer(),
                           lambda f: self._fail("whisper-failed", detail=f.getErrorMessage())
                           if self.state is State.WHISPER else None)
        else:
            self._dial_customer()

    def _agent_failed(self, failure) -> None:
        if self.state is not State.RINGING_AGENT:
            return
        self._fail(_leg_reason("agent", failure), status=_status(failure))

    def _dial_customer(self) -> None:
        if self.final:
            return
        r = self.request
        try:
            self.customer = self.telephony.originate(
                r.customer, caller_id=r.caller_id, timeout=r.customer_timeout)
        except UnknownTarget as exc:
            return self._fail("customer-failed", detail=str(exc))
        self._fire(I.DIAL_CUSTOMER, leg="customer", leg_id=self.customer.id)
        self.customer.when_answered().addCallbacks(self._customer_answered,
                                                   self._customer_failed)
        self.customer.when_ended().addBoth(self._leg_ended, "customer")

    def _customer_failed(self, failure) -> None:
        if self.state is not State.RINGING_CUSTOMER:
            return
        self._fail(_leg_reason("customer", failure), status=_status(failure))

    def _customer_answered(self, _result) -> None:
        if self.state is not State.RINGING_CUSTOMER:
            return
        d = self.telephony.bridge(self.agent, self.customer)
        if self.request.record:
            base = os.path.join(self.request.recordings_dir or ".", self.id)
            for role, leg in (("agent", self.agent), ("customer", self.customer)):
                path = f"{base}-{role}.wav"
                try:
                    leg.start_recording(path)
                    self.recordings[role] = path
                except Exception:
                    log.exception("recording %s leg of %s failed", role, self.id)
        self._fire(I.CUSTOMER_ANSWERED, agent_leg_id=self.agent.id,
                   customer_leg_id=self.customer.id)
        if self.request.max_duration:
            self._max_timer = self.clock.callLater(self.request.max_duration, self._max_duration)
        d.addErrback(lambda f: self._bridge_failed(f))

    def _bridge_failed(self, failure) -> None:
        if self.state is State.BRIDGED:
            self._fail("bridge-failed", detail=failure.getErrorMessage())

    def _max_duration(self) -> None:
        self._max_timer = None
        if self.state is not State.BRIDGED:
            return
        self.hangup_side = "system"
        self._complete("max-duration", input_=I.MAX_DURATION)

    def _leg_ended(self, result, role: str) -> None:
        reason = result if isinstance(result, str) else None
        if self.state is State.BRIDGED:
            self.hangup_side = role
            self._complete(f"{role}-hangup", leg_reason=reason)
        elif self.state in (State.AGENT_ANSWERED, State.WHISPER, State.RINGING_CUSTOMER) \
                and role == "agent":
            self.hangup_side = "agent"
            self._fail("agent-hangup")

    # -- endings ------------------------------------------------------------------

    def _complete(self, reason: str, input_: Input = Input.HUNG_UP, **details) -> None:
        self.reason = reason
        self._cancel_timer()
        self._fire(input_, reason=reason, hangup_side=self.hangup_side,
                   **self.durations(), **details)
        self._hangup_all("normal" if input_ is Input.HUNG_UP else reason)

    def _fail(self, reason: str, **details) -> None:
        if self.final:
            return
        self.reason = reason
        self._cancel_timer()
        self._fire(I.FAIL, reason=reason, **self.durations(),
                   **{k: v for k, v in details.items() if v is not None})
        self._hangup_all(reason)

    def _hangup_all(self, reason: str) -> None:
        for leg in (self.agent, self.customer):
            if leg is not None:
                try:
                    leg.hangup(reason)
                except Exception:
                    log.exception("hangup of %s failed", getattr(leg, "id", "?"))

    def _cancel_timer(self) -> None:
        if self._max_timer is not None and self._max_timer.active():
            self._max_timer.cancel()
        self._max_timer = None

    def durations(self) -> dict:
        now = self.clock.seconds()
        bridged = self.times.get("bridged")
        return {"duration": round(now - self.created_at, 3),
                "talk_time": round(now - bridged, 3) if bridged is not None else 0.0}

    def to_dict(self) -> dict:
        r = self.request
        return {"id": self.id, "state": self.state.value, "reason": self.reason,
                "agent": r.agent, "customer": r.customer, "caller_id": r.caller_id,
                "hangup_side": self.hangup_side, "created_at": self.created_at,
                "agent_leg_id": getattr(self.agent, "id", None),
                "customer_leg_id": getattr(self.customer, "id", None),
                "recordings": dict(self.recordings), "events": list(self.events)}


def _status(failure) -> int | None:
    return getattr(failure.value, "status", None)


def _leg_reason(role: str, failure) -> str:
    exc = failure.value
    if isinstance(exc, LegFailed):
        if exc.reason == "cancelled":
            return "cancelled"
        if exc.reason in ("busy", "no-answer", "rejected"):
            return f"{role}-{exc.reason}"
    return f"{role}-failed"

