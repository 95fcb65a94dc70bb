"""The queue engine's farm mode (PostgreSQL, several ``ivr serve`` nodes): callers wait in
one farm-wide line per queue, agents are offered one call at a time whichever node holds it.

:class:`FarmQueueEngine` keeps everything the single-node engine does for this node's
callers (their entries, results, max-wait and announcement timers, the dialer, the agents'
state machines for the rings it makes) but takes its decisions from a :class:`SharedQueue`
(``ivr.store.queue_state.QueueState``, injected by ``ivr/server.py``; this layer does not
import the store):

* a caller joining gets a farm-wide arrival number; leaving (hung up, timed out, answered
  elsewhere) deletes it;
* a matcher runs when a caller joins, an agent's call ends, a ring fails, and every
  ``poll`` seconds: it asks :meth:`SharedQueue.match` for the farm's oldest waiting caller
  *if that caller is on this node* (the node holding the caller dials the agent) and an
  idle agent, taken under row locks so that a caller and an agent are matched once and an
  agent is never offered two calls at once across nodes;
* the matched agent is rung through the dialer as the single-node engine rings it (the
  registrar's location finds a phone registered through any node); answered: the caller is
  connected and the agent is ``busy``; not answered: the caller keeps its place and the
  agent rests ``skip_after_no_answer`` seconds;
* when the bridged call ends the agent's wrap-up is written (``wrapup`` until a time);
* positions count every node's waiting callers (refreshed each poll; before this node has
  heard back from the database, the other nodes' callers as last seen plus this node's);
* this node writes an agent ``away`` / present when its view of the agent's reachability
  (registered, not on another call, not paused) changes.

Strategies: the farm offers the agent idle the longest (ring-all, round robin etc. are
single-node behaviours); priorities do not reorder the farm's line (arrival order).
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Protocol

from twisted.internet.defer import Deferred, succeed

from ivr.queue.agents import AgentEvent, AgentState
from ivr.queue.engine import QueueEngine, _Queue, _Ring
from ivr.queue.entry import EntryState, QueueEntry
from ivr.queue.model import OutcomeKind, QueueConfig

log = logging.getLogger(__name__)

#: Seconds between two rounds of the matcher (positions, presence, matches).
DEFAULT_POLL = 0.5


class SharedQueue(Protocol):
    """The farm's queue state (``ivr.store.queue_state.QueueState``); every method fires
    a Deferred once committed."""
    node: str

    def join(self, queue: str, caller: str, at: float) -> Deferred: ...

    def leave(self, queue: str, caller: str) -> Deferred: ...

    def positions(self, queue: str) -> Deferred: ...

    def match(self, queue: str, agents=None, now: float | None = None,
              only_node: str | None = None) -> Deferred: ...

    def finish(self, queue: str, caller: str, agent: str, answered: bool, at: float,
               rest_until: float | None = None) -> Deferred: ...

    def agent_present(self, agent: str, queue: str, at: float) -> Deferred: ...

    def agent_away(self, agent: str) -> Deferred: ...

    def agent_wrapup(self, agent: str, until: float) -> Deferred: ...


def _logged(what: str):
    def errback(failure):
        if getattr(failure.value, "outage", False):
            # the store logged the database outage once; every round would repeat it
            log.debug("queue (farm): %s waits for the database", what)
            return
        log.warning("queue (farm): %s failed: %s", what, failure.getErrorMessage())
    return errback


class FarmQueueEngine(QueueEngine):
    def __init__(self, clock, dialer, queues: Iterable[QueueConfig] = (), *,
                 shared: SharedQueue, poll: float = DEFAULT_POLL, **kw):
        self._shared = shared
        self._poll = poll
        self._keys: dict[str, QueueEntry] = {}        # farm caller key -> this node's entry
        self._joins: dict[QueueEntry, Deferred] = {}  # entry -> its join, until it leaves
        self._farm_pos: dict[QueueEntry, int] = {}
        self._others: dict[str, int] = {}             # queue -> other nodes' waiting callers
        self._matching: set[str] = set()
        self._again: set[str] = set()
        self._presence: dict[str, bool] = {}
        self._timer = None
        super().__init__(clock, dialer, queues, **kw)
        self._timer = clock.callLater(0, self._round)

    def stop(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    # -- callers ---------------------------------------------------------------------

    def enqueue(self, queue_name: str, caller_id: Any, caller_handle: Any = None,
                priority: int = 0, join_empty: bool | None = None) -> QueueEntry:
        entry = super().enqueue(queue_name, caller_id, caller_handle, priority, join_empty)
        if entry.state is not EntryState.WAITING:
            return entry
        key = f"{self._shared.node}/{entry.seq}/{entry.joined_at:.3f}"
        entry.farm_key = key
        self._keys[key] = entry

        def joined(position):
            if entry.state is EntryState.WAITING:
                self._farm_pos[entry] = int(position)
                self._match(entry.queue)
            return position
        d = self._shared.join(entry.queue, key, entry.joined_at)
        d.addCallbacks(joined, _logged(f"join of {key}"))
        self._joins[entry] = d
        return entry

    def position(self, entry: QueueEntry) -> int | None:
        """Place among every node's waiting callers."""
        local = super().position(entry)
        if local is None:
            return None
        known = self._farm_pos.get(entry)
        if known is not None:
            return known
        return self._others.get(entry.queue, 0) + local

    def _finish(self, entry: QueueEntry, outcome) -> None:
        super()._finish(entry, outcome)
        self._farm_pos.pop(entry, None)
        join = self._joins.pop(entry, None)
        key = getattr(entry, "farm_key", None)
        if key is None:
            return
        self._keys.pop(key, None)
        if outcome.kind is not OutcomeKind.ANSWERED and join is not None:
            # after the join (a leave committed first would leave a ghost in the line)
            join.addBoth(lambda _: self._shared.leave(entry.queue, key)).addErrback(
                _logged(f"leave of {key}"))

    def _dispatch_queue(self, q: _Queue) -> bool:
        return False    # the farm's matcher decides who is rung (:meth:`_match`)

    # -- agents ----------------------------------------------------------------------

    def call_ended(self, agent: str) -> bool:
        q = self._call_queue.get(agent)
        ended = super().call_ended(agent)
        if ended:
            wrapup = q.config.wrapup if q is not None else 0.0
            self._shared.agent_wrapup(agent, self._clock.seconds() + wrapup).addCallbacks(
                lambda _: self._match_all(), _logged(f"wrap-up of {agent}"))
        return ended

    def _ring_done(self, rec: _Ring, value) -> None:
        if rec.finished:
            return
        entry = rec.entry
        answered = bool(value) and entry.state is EntryState.WAITING
        super()._ring_done(rec, value)
        key = getattr(entry, "farm_key", None)
        if key is None:
            return
        now = self._clock.seconds()
        rest = None if answered else self._agents[rec.agent].skip_until
        d = self._shared.finish(entry.queue, key, rec.agent, answered, now, rest)
        d.addCallbacks(lambda _: None if answered else self._match(entry.queue),
                       _logged(f"the offer of {key} to {rec.agent}"))

    # -- the matcher -----------------------------------------------------------------

    def _round(self) -> None:
        self._timer = self._clock.callLater(self._poll, self._round)
        now = self._clock.seconds()
        self._sync_presence(now)
        for name, q in list(self._queues.items()):
            self._refresh_positions(name)   # also without callers here: a new one's place
            if q.waiting:
                self._match(name)

    def _match_all(self) -> None:
        for name, q in list(self._queues.items()):
            if q.waiting:
                self._match(name)

    def _sync_presence(self, now: float) -> None:
        for name, q in list(self._queues.items()):
            for agent in q.config.agents:
                here = not self._agent(agent).paused and self._reachable(agent)
                if self._presence.get(agent) == here:
                    continue
                self._presence[agent] = here
                if here:
                    d = self._shared.agent_present(agent, name, now)
                else:
                    d = self._shared.agent_away(agent)

                def failed(failure, agent=agent):
                    self._presence.pop(agent, None)   # written again next round
                    _logged(f"presence of {agent}")(failure)
                d.addErrback(failed)

    def _refresh_positions(self, name: str) -> None:
        def got(result):
            mine, others = result
            self._others[name] = others
            for key, position in mine.items():
                entry = self._keys.get(key)
                if entry is not None and entry.state is EntryState.WAITING:
                    self._farm_pos[entry] = position
        self._shared.positions(name).addCallbacks(got, _logged(f"positions in {name}"))

    def _match(self, name: str) -> Deferred:
        q = self._queues.get(name)
        if q is None or not q.waiting:
            return succeed(None)
        if name in self._matching:
            self._again.add(name)
            return succeed(None)
        self._matching.add(name)

        def matched(offer):
            if offer is not None:
                with self._op():
                    self._offer(q, *offer)
            return offer

        def failed(failure):
            _logged(f"matching in {name}")(failure)
            return None                          # tried again next round

        def done(offer):
            self._matching.discard(name)
            if offer is not None or name in self._again:   # perhaps another one
                self._again.discard(name)
                self._match(name)

        d = self._shared.match(name, q.config.agents, self._clock.seconds(),
                               only_node=self._shared.node)
        d.addCallback(matched).addErrback(failed).addCallback(done)
        return d

    def _offer(self, q: _Queue, key: str, node: str, agent: str) -> None:
        entry = self._keys.get(key)
        if entry is None or entry.state is not EntryState.WAITING:   # gone meanwhile
            self._shared.leave(q.config.name, key).addErrback(_logged(f"leave of {key}"))
            return
        a = self._agent(agent)
        if a.state is AgentState.WRAP_UP:      # the farm's wrap-up time has come
            a.handle(AgentEvent.WRAPUP_DONE)
        if a.state is not AgentState.AVAILABLE or agent not in q.config.agents:
            log.warning("queue %s: the farm offered %s, busy here (%s)", q.config.name,
                        agent, a.state.value)
            now = self._clock.seconds()
            self._shared.finish(q.config.name, key, agent, False, now,
                                now + max(5.0, q.config.skip_after_no_answer)).addErrback(
                _logged("an offer"))
            return
        self._ring(q, entry, agent)
