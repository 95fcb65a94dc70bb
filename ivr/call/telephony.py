"""What the HTTP API and click-to-call need from the telephony core.

The real implementation lives in :mod:`ivr.call.control` (over the SIP user agent, call
legs and bridges); tests use in-memory fakes with a ``task.Clock``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

from twisted.internet.defer import Deferred


class UnknownTarget(Exception):
    """An extension or number that cannot be called (unknown extension, no trunk)."""


class LegFailed(Exception):
    """An outbound leg ended before being answered.  ``reason`` is one of
    ``busy``, ``no-answer``, ``rejected``, ``failed``, ``cancelled``."""

    def __init__(self, reason: str, status: int | None = None, detail: str = "") -> None:
        super().__init__(f"{reason} ({status}) {detail}".strip())
        self.reason = reason
        self.status = status
        self.detail = detail


@dataclass
class LegInfo:
    id: str               # our id for the leg (SIP Call-ID)
    direction: str        # "inbound" | "outbound"
    remote: str           # the number or URI of the other party
    state: str            # "ringing" | "answered" | "ended" | ...
    started_at: float
    answered_at: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None
    flow: str | None = None
    variables: dict = field(default_factory=dict)


def leg_info(call) -> LegInfo:
    """What the API shows of a leg (a Call or an OutboundCall)."""
    if call.ended:
        state = "ended"
    elif call.answered:
        state = "answered"
    else:
        state = "ringing"
    outbound = getattr(call, "direction", "") == "outbound"
    return LegInfo(id=call.id, direction=getattr(call, "direction", "inbound"),
                   remote=call.called if outbound else (call.caller.number or ""),
                   state=state, started_at=call.started_at, answered_at=call.answered_at,
                   ended_at=call.ended_at, end_reason=call.end_reason,
                   flow=call.variables.get("flow"), variables=dict(call.variables))


class Leg(Protocol):
    id: str

    def info(self) -> LegInfo: ...

    def when_answered(self) -> Deferred:
        """Fires when answered; errbacks LegFailed if it never is."""
        ...

    def when_ended(self) -> Deferred:
        """Fires with the end reason when the leg ends (either side)."""
        ...

    def hangup(self, reason: str = "normal") -> None: ...

    def say(self, text: str) -> Deferred:
        """Speak to this leg only (whisper); fires when done."""
        ...

    def send_digits(self, digits: str) -> Deferred: ...

    def start_recording(self, path: str) -> None: ...


class Telephony(Protocol):
    def resolve(self, target: str) -> str:
        """An extension ("2001"), an E.164 number or a SIP URI -> the SIP URI to call.
        Raises UnknownTarget."""
        ...

    def originate(self, target: str, *, caller_id: str | None = None, timeout: float = 30.0,
                  on_event: Callable[[str, dict], None] | None = None) -> Leg:
        """Place an outbound call.  ``on_event(name, data)`` gets ``ringing``, ``answered``,
        ``failed`` (data has ``reason``) and ``completed`` as they happen."""
        ...

    def run_flow(self, leg: Leg, flow: str, variables: dict | None = None) -> Deferred:
        """Run a named dialplan flow on an answered leg; fires when the flow ends."""
        ...

    def bridge(self, a: Leg, b: Leg) -> Deferred:
        """Connect two answered legs' audio (and DTMF); fires when either hangs up,
        after hanging up the other."""
        ...

    def legs(self) -> list[LegInfo]: ...

    def leg(self, leg_id: str) -> Leg | None: ...
