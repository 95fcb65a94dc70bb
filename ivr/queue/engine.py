"""The call-queue engine (ACD): callers wait in named queues, agents are rung per strategy.

No SIP here.  The engine is driven by an injected clock (``IReactorTime``) and rings agents
through an injected dialer::

    attempt = dialer.ring(agent, entry)   # -> object with .result (Deferred) and .cancel()
    attempt.result fires truthy (answered; the value comes back as Outcome.answer) or
    falsy/errback (no answer, busy, failed).  The engine cancels it after ring_timeout,
    when another agent wins a ring-all, or when the caller leaves.

Dispatch happens whenever something changes (a caller joins or leaves, an agent frees up,
a skip period ends, ``agent_changed()``).  Order is strict: a queue offers its head caller
first and nobody behind it is offered while the head has no agent; unless ``autofill`` is
set, callers behind a ringing head wait too, so callers are answered in FIFO order.
An agent is one state machine shared by all queues: ringing or on a call for one queue is
busy for all.

Re-entrancy: every public method and every timer/Deferred callback is one "operation";
the outermost operation dispatches until nothing changes and only then fires results and
announcement callbacks, so user code always sees a consistent engine and may call back in.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Callable, Iterable

from ivr.queue.agents import Agent, AgentEvent, AgentState
from ivr.queue.entry import Dialer, EntryState, QueueEntry
from ivr.queue.model import Outcome, OutcomeKind, QueueConfig, Strategy
from ivr.queue.stats import QueueStats
from ivr.queue.strategies import choose

log = logging.getLogger(__name__)


class UnknownQueueError(KeyError):
    """Our misuse: enqueue to a queue name the engine was not configured with."""


class _Queue:
    def __init__(self, config: QueueConfig):
        self.config = config
        self.waiting: list[QueueEntry] = []
        self.rr_last = -1
        self.stats = QueueStats(config.ewt_samples)
        self.retired = False


class _Ring:
    """One ring of one agent for one entry (the entry keeps it under the agent's name)."""
    __slots__ = ("agent", "entry", "attempt", "timer", "finished")

    def __init__(self, agent: str, entry: QueueEntry):
        self.agent = agent
        self.entry = entry
        self.attempt = None
        self.timer = None
        self.finished = False


def _cancel_timer(timer) -> None:
    if timer is not None and timer.active():
        timer.cancel()


class QueueEngine:
    def __init__(self, clock, dialer: Dialer, queues: Iterable[QueueConfig] = (),
                 is_reachable: Callable[[str], bool] | None = None,
                 is_logged_in: Callable[[str], bool] | None = None):
        """``is_reachable(agent)``: may the agent be rung now (registered and not on another
        call)?  ``is_logged_in(agent)``: is the agent there at all (registered, perhaps
        busy)?  It decides "no agents" (join_empty, leave_when_empty, the enqueue verb's
        on_no_agents) and the estimated wait; by default the same as ``is_reachable``."""
        self._clock = clock
        self._dialer = dialer
        self._is_reachable = is_reachable or (lambda agent: True)
        self._is_logged_in = is_logged_in or self._is_reachable
        self._queues: dict[str, _Queue] = {}
        self._agents: dict[str, Agent] = {}
        self._call_queue: dict[str, _Queue] = {}   # agent on a call -> the queue it came from
        self._seq = 0
        self._depth = 0
        self._settling = False
        self._pending: list[Callable[[], Any]] = []
        self.configure(queues)

    # -- configuration -------------------------------------------------------------------

    def configure(self, queues: Iterable[QueueConfig]) -> None:
        """(Re)load queue configs.  Callers already waiting in a removed queue stay until
        they leave; new callers for it get UnknownQueueError."""
        with self._op():
            new = {q.name: q for q in queues}
            for name, q in self._queues.items():
                if name not in new:
                    q.retired = True
            for name, cfg in new.items():
                q = self._queues.get(name)
                if q is None:
                    self._queues[name] = _Queue(cfg)
                else:
                    q.config, q.retired = cfg, False
                    q.rr_last = min(q.rr_last, len(cfg.agents) - 1)
                    if q.stats.handle_times.maxlen != cfg.ewt_samples:
                        old = list(q.stats.handle_times)
                        q.stats.handle_times = type(q.stats.handle_times)(old, cfg.ewt_samples)
                for agent in cfg.agents:
                    self._agent(agent)

    # -- callers -------------------------------------------------------------------------

    def enqueue(self, queue_name: str, caller_id: Any, caller_handle: Any = None,
                priority: int = 0, join_empty: bool | None = None) -> QueueEntry:
        """Join a queue.  Higher ``priority`` goes ahead; FIFO within a priority.
        ``join_empty`` overrides the queue's setting for this caller (False: refused with
        NO_AGENTS at once when no agent is logged in)."""
        q = self._queues.get(queue_name)
        if q is None or q.retired:
            raise UnknownQueueError(queue_name)
        with self._op():
            now = self._clock.seconds()
            self._seq += 1
            entry = QueueEntry(self, q, caller_id, caller_handle, priority, now, self._seq)
            cfg = q.config
            if cfg.max_callers is not None and len(q.waiting) >= cfg.max_callers:
                q.stats.refused += 1
                self._finish(entry, Outcome(OutcomeKind.FULL))
                return entry
            if join_empty is None:
                join_empty = cfg.join_empty
            if not join_empty and self._logged_in(q) == 0:
                q.stats.refused += 1
                self._finish(entry, Outcome(OutcomeKind.NO_AGENTS))
                return entry
            at = len(q.waiting)
            while at > 0 and q.waiting[at - 1].priority < priority:
                at -= 1
            q.waiting.insert(at, entry)
            if cfg.max_wait:
                entry._max_wait_timer = self._later(cfg.max_wait, self._max_wait, entry)
            self._schedule_announce(entry)
            return entry

    def position(self, entry: QueueEntry) -> int | None:
        """1-based place among the queue's waiting callers; None once out of the queue."""
        if entry.state is not EntryState.WAITING:
            return None
        return entry._queue.waiting.index(entry) + 1

    def estimated_wait(self, entry: QueueEntry) -> float | None:
        """Seconds, per the formula in :mod:`ivr.queue.stats`; None if unknown or out."""
        pos = self.position(entry)
        if pos is None:
            return None
        q = entry._queue
        now = self._clock.seconds()
        free = (sum(1 for m in q.config.agents if self._eligible(m, now))
                + sum(1 for e in q.waiting if e._rings))
        return q.stats.ewt(pos, free, self._logged_in(q))

    def waiting(self, queue_name: str) -> list[QueueEntry]:
        return list(self._queues[queue_name].waiting)

    # -- agents --------------------------------------------------------------------------

    def call_ended(self, agent: str) -> bool:
        """The agent's bridged queue call is over: wrap-up, then available.  Idempotent."""
        with self._op():
            a = self._agents.get(agent)
            if a is None or a.state is not AgentState.ON_CALL:
                return False
            now = self._clock.seconds()
            q = self._call_queue.pop(agent, None)
            wrapup = q.config.wrapup if q is not None else 0.0
            if q is not None:
                answered = a.answered_at if a.answered_at is not None else now
                q.stats.record_handle(now - answered + wrapup)
            a.handle(AgentEvent.HANG_UP)
            a.idle_since = now
            if wrapup > 0:
                self._later(wrapup, self._wrapup_done, a)
            else:
                self._wrapup_done(a)
            return True

    def pause(self, agent: str, paused: bool = True) -> None:
        """A paused agent is not offered calls (and does not count as logged in)."""
        with self._op():
            self._agent(agent).paused = paused

    def agent_changed(self, agent: str | None = None) -> None:
        """Tell the engine that ``is_reachable`` may answer differently now (an agent
        registered, unregistered, or finished a non-queue call); dispatches again."""
        with self._op():
            pass

    def agent_status(self, agent: str) -> dict:
        return self._agent(agent).snapshot(self._clock.seconds(), self._reachable(agent))

    def queue_status(self, queue_name: str) -> dict:
        q = self._queues[queue_name]
        return {"queue": queue_name, "strategy": q.config.strategy.value,
                "waiting": [e.caller_id for e in q.waiting],
                "agents": [self.agent_status(a) for a in q.config.agents],
                **q.stats.snapshot()}

    # -- operations and dispatch ---------------------------------------------------------

    @contextmanager
    def _op(self):
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._settle()

    def _settle(self) -> None:
        if self._settling:
            return
        self._settling = True
        try:
            while True:
                self._depth += 1
                try:
                    self._dispatch_all()
                finally:
                    self._depth -= 1
                if not self._pending:
                    return
                self._pending.pop(0)()
        finally:
            self._settling = False

    def _later(self, delay: float, fn, *args):
        def fire():
            with self._op():
                fn(*args)
        return self._clock.callLater(delay, fire)

    def _dispatch_all(self) -> None:
        progress = True
        while progress:
            progress = False
            for name, q in list(self._queues.items()):
                if q.retired and not q.waiting:
                    del self._queues[name]
            live = [q for q in self._queues.values() if q.waiting]
            for q in live:
                if q.config.leave_when_empty and self._logged_in(q) == 0:
                    for entry in list(q.waiting):
                        self._finish(entry, Outcome(OutcomeKind.NO_AGENTS,
                                                    wait=self._waited(entry)))
            live.sort(key=lambda q: q.waiting[0].seq if q.waiting else 0)
            for q in live:
                if q.waiting and self._dispatch_queue(q):
                    progress = True

    def _dispatch_queue(self, q: _Queue) -> bool:
        cfg = q.config
        now = self._clock.seconds()
        rang = False
        for entry in list(q.waiting):
            if entry.state is not EntryState.WAITING:
                continue
            if entry._rings and cfg.strategy is not Strategy.RING_ALL:
                if cfg.autofill:
                    continue
                break
            eligible = {m for m in cfg.agents if m not in entry._rings and self._eligible(m, now)}
            chosen = choose(cfg.strategy, cfg.agents, eligible, self._agents, q.rr_last)
            if not chosen:
                if entry._rings and cfg.autofill:
                    continue
                break
            for name in chosen:
                if entry.state is not EntryState.WAITING:
                    break
                if self._eligible(name, now):
                    self._ring(q, entry, name)
                    rang = True
            if not cfg.autofill:
                break
        return rang

    def _ring(self, q: _Queue, entry: QueueEntry, name: str) -> None:
        agent = self._agents[name]
        agent.handle(AgentEvent.RING)
        agent.queue = q.config.name
        if q.config.strategy is Strategy.ROUND_ROBIN:
            q.rr_last = q.config.agents.index(name)
        rec = _Ring(name, entry)
        entry._rings[name] = rec
        try:
            rec.attempt = self._dialer.ring(name, entry)
            result = rec.attempt.result
        except Exception:
            log.exception("queue %s: ringing agent %s failed", q.config.name, name)
            self._ring_done(rec, None)
            return
        rec.timer = self._later(q.config.ring_timeout, self._ring_timed_out, rec)
        result.addCallbacks(self._ring_answered, self._ring_failed,
                            callbackArgs=(rec,), errbackArgs=(rec,))

    def _ring_answered(self, value, rec: _Ring):
        with self._op():
            self._ring_done(rec, value)

    def _ring_failed(self, failure, rec: _Ring):
        with self._op():
            if not rec.finished:
                log.info("queue ring of agent %s failed: %s", rec.agent, failure.getErrorMessage())
            self._ring_done(rec, None)

    def _ring_timed_out(self, rec: _Ring) -> None:
        if rec.finished:
            return
        self._ring_done(rec, None)
        self._cancel_attempt(rec)

    def _ring_done(self, rec: _Ring, value) -> None:
        if rec.finished:
            return
        rec.finished = True
        _cancel_timer(rec.timer)
        entry = rec.entry
        entry._rings.pop(rec.agent, None)
        agent = self._agents[rec.agent]
        now = self._clock.seconds()
        if value and entry.state is EntryState.WAITING:
            agent.handle(AgentEvent.ANSWER)
            agent.answered_at = now
            agent.calls_taken += 1
            self._call_queue[rec.agent] = entry._queue
            self._finish(entry, Outcome(OutcomeKind.ANSWERED, agent=rec.agent,
                                        wait=self._waited(entry), answer=value))
            return
        agent.handle(AgentEvent.NO_ANSWER)
        agent.queue = None
        agent.missed += 1
        agent.skip_until = max(agent.skip_until, now + entry._queue.config.skip_after_no_answer)
        _cancel_timer(agent.skip_timer)
        agent.skip_timer = self._later(agent.skip_until - now, lambda: None)

    def _cancel_ring(self, rec: _Ring) -> None:
        if rec.finished:
            return
        rec.finished = True
        _cancel_timer(rec.timer)
        rec.entry._rings.pop(rec.agent, None)
        agent = self._agents[rec.agent]
        agent.handle(AgentEvent.CANCEL)
        agent.queue = None
        self._cancel_attempt(rec)

    def _cancel_attempt(self, rec: _Ring) -> None:
        if rec.attempt is None:
            return
        try:
            rec.attempt.cancel()
        except Exception:
            log.exception("cancelling the ring of agent %s failed", rec.agent)

    def _finish(self, entry: QueueEntry, outcome: Outcome) -> None:
        entry.end(outcome)
        _cancel_timer(entry._max_wait_timer)
        _cancel_timer(entry._announce_timer)
        for rec in list(entry._rings.values()):
            self._cancel_ring(rec)
        q = entry._queue
        if entry in q.waiting:
            q.waiting.remove(entry)
        if outcome.kind is OutcomeKind.ANSWERED:
            q.stats.record_answer(outcome.wait)
        elif outcome.kind is OutcomeKind.ABANDONED:
            q.stats.abandoned += 1
        elif outcome.kind is OutcomeKind.TIMEOUT:
            q.stats.timeouts += 1
        self._pending.append(lambda: entry.result.callback(outcome))

    def abandon(self, entry: QueueEntry) -> bool:
        """The caller hung up (``entry.abandon()``): False if already out."""
        with self._op():
            if entry.state is not EntryState.WAITING:
                return False
            self._finish(entry, Outcome(OutcomeKind.ABANDONED, wait=self._waited(entry)))
            return True

    def _max_wait(self, entry: QueueEntry) -> None:
        if entry.state is EntryState.WAITING:
            self._finish(entry, Outcome(OutcomeKind.TIMEOUT, wait=self._waited(entry)))

    def _schedule_announce(self, entry: QueueEntry) -> None:
        every = entry._queue.config.announce_position_every
        if every:
            entry._announce_timer = self._later(every, self._announce, entry)

    def _announce(self, entry: QueueEntry) -> None:
        if entry.state is not EntryState.WAITING:
            return
        pos, ewt = self.position(entry), self.estimated_wait(entry)
        for callback in list(entry._announcers):
            self._pending.append(lambda cb=callback: self._call_announcer(entry, cb, pos, ewt))
        self._schedule_announce(entry)

    @staticmethod
    def _call_announcer(entry, callback, pos, ewt) -> None:
        if entry.state is not EntryState.WAITING:
            return
        try:
            callback(pos, ewt)
        except Exception:
            log.exception("queue announcement callback failed for %r", entry)

    def _wrapup_done(self, agent: Agent) -> None:
        agent.handle(AgentEvent.WRAPUP_DONE)
        agent.queue = None

    # -- helpers ---------------------------------------------------------------------------

    def _agent(self, name: str) -> Agent:
        a = self._agents.get(name)
        if a is None:
            a = self._agents[name] = Agent(name)
        return a

    def _reachable(self, name: str) -> bool:
        try:
            return bool(self._is_reachable(name))
        except Exception:
            log.exception("is_reachable(%r) failed; treating the agent as logged out", name)
            return False

    def _present(self, name: str) -> bool:
        try:
            return bool(self._is_logged_in(name))
        except Exception:
            log.exception("is_logged_in(%r) failed; treating the agent as logged out", name)
            return False

    def _eligible(self, name: str, now: float) -> bool:
        return self._agent(name).free_at(now) and self._reachable(name)

    def _logged_in(self, q: _Queue) -> int:
        return sum(1 for m in q.config.agents
                   if not self._agent(m).paused and self._present(m))

    def _waited(self, entry: QueueEntry) -> float:
        return self._clock.seconds() - entry.joined_at
