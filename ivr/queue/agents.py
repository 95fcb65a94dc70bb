"""Agent state: one machine per agent, shared by every queue the agent belongs to.

States and the single transition table live here.  Being paused, skipped after a missed
ring (``skip_until``) or unreachable (logged out: the injected ``is_reachable`` says no)
are conditions layered on top of the state, not states: an agent in wrap-up can also be
paused.  Pure: times are passed in, nothing here reads a clock.
"""
from __future__ import annotations

from enum import Enum

from ivr.fsm import TransitionError, next_state


class AgentState(Enum):
    AVAILABLE = "available"
    RINGING = "ringing"
    ON_CALL = "on-call"
    WRAP_UP = "wrap-up"


class AgentEvent(Enum):
    RING = "ring"
    ANSWER = "answer"
    NO_ANSWER = "no-answer"   # timed out, busy, failed: the agent is skipped for a while
    CANCEL = "cancel"         # another agent won, or the caller left: not the agent's fault
    HANG_UP = "hang-up"
    WRAPUP_DONE = "wrapup-done"


_TRANSITIONS = {
    (AgentState.AVAILABLE, AgentEvent.RING): AgentState.RINGING,
    (AgentState.RINGING, AgentEvent.ANSWER): AgentState.ON_CALL,
    (AgentState.RINGING, AgentEvent.NO_ANSWER): AgentState.AVAILABLE,
    (AgentState.RINGING, AgentEvent.CANCEL): AgentState.AVAILABLE,
    (AgentState.ON_CALL, AgentEvent.HANG_UP): AgentState.WRAP_UP,
    (AgentState.WRAP_UP, AgentEvent.WRAPUP_DONE): AgentState.AVAILABLE,
}


class AgentStateError(TransitionError):
    """Our own misuse: an event the agent's current state does not allow."""


class Agent:
    """One agent (an extension).  ``idle_since`` is when their last queue call ended
    (``None`` = never took one, which counts as idle the longest)."""

    def __init__(self, name: str):
        self.name = name
        self.state = AgentState.AVAILABLE
        self.paused = False
        self.skip_until = 0.0
        self.idle_since: float | None = None
        self.queue: str | None = None        # queue of the current ring/call
        self.answered_at: float | None = None
        self.calls_taken = 0
        self.missed = 0
        self.skip_timer = None

    def handle(self, event: AgentEvent) -> AgentState:
        self.state = next_state(_TRANSITIONS, self.state, event, what=f"agent {self.name}",
                                error=AgentStateError)
        return self.state

    def free_at(self, now: float) -> bool:
        """Available, not paused and not skipped (reachability is asked separately)."""
        return (self.state is AgentState.AVAILABLE and not self.paused
                and self.skip_until <= now)

    def snapshot(self, now: float, reachable: bool) -> dict:
        return {
            "agent": self.name,
            "state": self.state.value if reachable else "logged-out",
            "paused": self.paused,
            "skipped_for": max(0.0, self.skip_until - now),
            "queue": self.queue,
            "calls_taken": self.calls_taken,
            "missed": self.missed,
            "idle_since": self.idle_since,
        }
