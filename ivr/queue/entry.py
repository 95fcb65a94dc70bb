"""A queued caller (:class:`QueueEntry`), its states, and the dialer's interface.

The entry knows its queue engine only through :class:`EntryOwner` (what it asks of it),
so this module does not import the engine."""
from __future__ import annotations

from enum import Enum
from typing import Any, Callable, Protocol

from twisted.internet.defer import Deferred

from ivr.fsm import next_state
from ivr.queue.model import Outcome, OutcomeKind, QueueConfig


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


class EntryOwner(Protocol):
    """What an entry asks of the engine that holds it."""

    def position(self, entry: "QueueEntry") -> int | None: ...

    def estimated_wait(self, entry: "QueueEntry") -> float | None: ...

    def abandon(self, entry: "QueueEntry") -> bool: ...


class QueueOfEntry(Protocol):
    """The engine's record of the queue an entry waits in (the entry reads its name)."""
    config: QueueConfig


_TRANSITIONS = {
    (EntryState.WAITING, OutcomeKind.ANSWERED): EntryState.ANSWERED,
    (EntryState.WAITING, OutcomeKind.TIMEOUT): EntryState.TIMED_OUT,
    (EntryState.WAITING, OutcomeKind.ABANDONED): EntryState.ABANDONED,
    (EntryState.WAITING, OutcomeKind.FULL): EntryState.REFUSED,
    (EntryState.WAITING, OutcomeKind.NO_AGENTS): EntryState.REFUSED,
}


class QueueEntry:
    """One waiting caller.  ``result`` fires exactly once with an :class:`Outcome`."""

    def __init__(self, engine: EntryOwner, queue: QueueOfEntry, caller_id: Any,
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
        self._rings: dict[str, Any] = {}  # agent -> the engine's ring record
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
        return self._engine.abandon(self)

    def end(self, outcome: Outcome) -> None:
        """Leave the queue with ``outcome`` (the engine's call; only once, while waiting)."""
        self.state = next_state(_TRANSITIONS, self.state, outcome.kind,
                                what=f"queue entry {self.queue}#{self.seq}")
        self.outcome = outcome

    def __repr__(self) -> str:
        return f"<QueueEntry {self.queue}#{self.seq} {self.caller_id!r} {self.state.value}>"

