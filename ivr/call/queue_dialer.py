"""Connects the queue engine (``ivr/queue``) to real call legs: ringing an agent is an
outbound call to the agent's extension; an agent is logged in while registered (or with a
static contact), and reachable while logged in and not already on a call."""
from __future__ import annotations

from twisted.internet import defer

from .telephony import LegFailed, UnknownTarget


class _RingAttempt:
    def __init__(self, leg) -> None:
        self.leg = leg
        self.result = defer.Deferred()
        leg.when_answered().addCallbacks(self._answered, self._failed)

    def _answered(self, leg) -> None:
        if not self.result.called:
            self.result.callback(leg)
        else:  # answered after the engine gave up on it
            leg.hangup("queue-cancelled")

    def _failed(self, failure) -> None:
        failure.trap(LegFailed)
        if not self.result.called:
            self.result.callback(False)

    def cancel(self) -> None:
        if not self.leg.ended:
            self.leg.hangup("queue-ring-timeout")
        if not self.result.called:
            self.result.callback(False)


class QueueDialer:
    def __init__(self, control, calls, ring_limit: float = 600.0) -> None:
        self.control = control
        self.calls = calls  # every live leg (ivr.call.table.CallTable)
        self.ring_limit = ring_limit  # the engine applies each queue's ring_timeout itself

    def ring(self, agent: str, entry) -> _RingAttempt:
        caller = getattr(entry.caller_handle, "caller", None)
        leg = self.control.originate(agent, caller_id=getattr(caller, "number", None),
                                     timeout=self.ring_limit)
        leg.variables["queue"] = entry.queue
        return _RingAttempt(leg)

    def is_logged_in(self, agent: str) -> bool:
        """Registered (or with a static contact), busy or not: a queue with such an agent
        is not "without agents"."""
        try:
            self.control.routes(agent)
        except UnknownTarget:
            return False
        return True

    def is_reachable(self, agent: str) -> bool:
        if not self.is_logged_in(agent):
            return False
        return not any(getattr(call, "variables", {}).get("target") == agent
                       and not call.ended and "queue" not in call.variables
                       for call in self.calls.values())
