"""A queued caller (:class:`QueueEntry`), its states, and the dialer's interface."""
from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, Protocol

from twisted.internet.defer import Deferred

from ivr.queue.model import Outcome, OutcomeKind

if TYPE_CHECKING:
    from ivr.queue.engine import QueueEngine, _Queue


class RingAttempt(Protocol):
    """One call to one agent.  ``result`` fires a truthy value when the agent answered
    (it comes back as ``Outcome.answer``, e.g. the agent's call leg) or a falsy value /
    a failure for no answer, busy, unreachable.  ``cancel()`` hangs the ringing leg up (and
    must hang up a leg that answers after being cancelled); results after it are ignored."""
    result: Deferred

    def cancel(self) -> None: ...


class Dialer(Protocol):
    def ring(self, agent: str, entry: "QueueEntry") -> RingAttempt:
        """Start ringing ``agent`` for ``entry`` (caller id: ``entry.caller_id``).  May
        raise or fire synchronously; either is handled (an exception counts as no answer)."""
        ...


class EntryState(Enum):
    WAITING = "waiting"
    ANSWERED = "answered"
    TIMED_OUT = "timed-out"
    ABANDONED = "abandoned"
    REFUSED = "refused"


_ENTRY_TRANSITIONS = {
    (EntryState.WAITING, OutcomeKind.ANSWERED): EntryState.ANSWERED,
    (EntryState.WAITING, OutcomeKind.TIMEOUT): EntryState.TIMED_OUT,
    (EntryState.WAITING, OutcomeKind.ABANDONED): EntryState.ABANDONED,
    (EntryState.WAITING, OutcomeKind.FULL): EntryState.REFUSED,
    (EntryState.WAITING, OutcomeKind.NO_AGENTS): EntryState.REFUSED,
}


class QueueEntry:
    """One waiting caller.  ``result`` fires exactly once with an :class:`Outcome`."""

    def __init__(self, engine: "QueueEngine", queue: "_Queue", caller_id: Any,
                 caller_handle: Any, priority: int, joined_at: float, seq: int):
        self._engine = engine
        self._queue = queue
        self.queue = queue.config.name
        self.caller_id = caller_id
        self.caller_handle = caller_handle
        self.priority = priority
        self.joined_at = joined_at
        self.seq = seq
        self.state = EntryState.WAITING
        self.outcome: Outcome | None = None
        self.result: Deferred = Deferred()
        self._rings: dict[str, _Ring] = {}
        self._announcers: list[Callable[[int, float | None], Any]] = []
        self._max_wait_timer = None
        self._announce_timer = None

    @property
    def ringing(self) -> tuple[str, ...]:
        """Agents being rung for this caller right now."""
        return tuple(self._rings)

    @property
    def position(self) -> int | None:
        return self._engine.position(self)

    @property
    def estimated_wait(self) -> float | None:
        return self._engine.estimated_wait(self)

    def on_announce(self, callback: Callable[[int, float | None], Any]) -> None:
        """``callback(position, ewt)`` every ``announce_position_every`` s while waiting."""
        self._announcers.append(callback)

    def abandon(self) -> bool:
        """The caller hung up: leave with Outcome("abandoned").  False if already out."""
        return self._engine._abandon(self)

    def __repr__(self) -> str:
        return f"<QueueEntry {self.queue}#{self.seq} {self.caller_id!r} {self.state.value}>"


class _Ring:
    __slots__ = ("agent", "entry", "attempt", "timer", "finished")

    def __init__(self, agent: str, entry: QueueEntry):
        self.agent = agent
        self.entry = entry
        self.attempt = None
        self.timer = None
        self.finished = False
