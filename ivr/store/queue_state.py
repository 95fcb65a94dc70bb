"""Queue state shared by the nodes of a farm (PostgreSQL mode): waiting callers in arrival
order across the farm and agent availability, matched exactly once.

The engine's farm mode (``ivr/queue/farm.py``, wired by ``ivr serve --database
postgresql://...``) calls it; SQLite mode keeps the engine's in-memory state.

* :meth:`QueueState.join` gives a caller a farm-wide arrival number (a counter row of the
  queue, incremented under its row lock) and returns its position among every node's
  waiting callers (for position announcements).
* :meth:`QueueState.match` takes the queue's row lock (``SELECT ... FOR UPDATE``: matches
  of one queue are serialised, so the oldest waiting caller is always the one matched:
  strict arrival order), then an idle agent with ``FOR UPDATE SKIP LOCKED`` (an agent row
  another transaction holds is passed over, never offered twice), and marks both
  ``offered`` in the same transaction: a caller and an agent are matched exactly once.
* :meth:`QueueState.finish` ends an offer: answered (caller leaves, agent ``busy``), or not
  (caller waits again at its old place, agent idle, or resting until a time).
  :meth:`agent_idle` after wrap-up.

An offered or busy agent's row names the node holding the call (``node``): when that node
dies (``ivr.store.node_liveness``) its callers are deleted and its agents are idle again.

Agent states: ``idle``, ``offered`` (matched, being rung), ``busy`` (on a queue call),
``wrapup`` (``since`` is the time it may be offered again: wrap-up after a call, or the
rest after a missed ring) and ``away`` (logged out or unreachable).  The engine's farm mode
writes them: :meth:`agent_present` / :meth:`agent_away` as reachability changes (they never
touch an agent that is offered, busy or in wrap-up), :meth:`agent_wrapup` when a call ends.
"""
from __future__ import annotations

from twisted.internet.defer import Deferred

from .migrations import migrate


class QueueState:
    def __init__(self, db, node: str) -> None:
        self.db, self.node = db, node
        migrate(db)

    def _lock(self, conn, queue: str) -> int:
        """The queue's row, locked for this transaction; returns its counter."""
        conn.execute("INSERT INTO queue_heads (queue, counter) VALUES (?, 0) "
                     "ON CONFLICT (queue) DO NOTHING", (queue,))
        suffix = " FOR UPDATE" if self.db.dialect == "postgresql" else ""
        return int(conn.execute("SELECT counter FROM queue_heads WHERE queue = ?" + suffix,
                                (queue,)).fetchone()[0])

    def join(self, queue: str, caller: str, at: float) -> Deferred:
        """A caller starts waiting on this node; fires with its position (1 = next)."""
        def work(conn) -> int:
            number = self._lock(conn, queue) + 1
            conn.execute("UPDATE queue_heads SET counter = ? WHERE queue = ?", (number, queue))
            conn.execute("INSERT INTO queue_callers (queue, caller, node, arrival, joined_at, "
                         "state, agent) VALUES (?, ?, ?, ?, ?, 'waiting', NULL)",
                         (queue, caller, self.node, number, at))
            return _position(conn, queue, number)
        return self.db.run(work)

    def position(self, queue: str, caller: str) -> Deferred:
        """Waiting callers ahead of ``caller`` on every node, plus one (None: not waiting)."""
        def work(conn):
            row = conn.execute("SELECT arrival FROM queue_callers WHERE queue = ? AND "
                               "caller = ? AND state = 'waiting'", (queue, caller)).fetchone()
            return None if row is None else _position(conn, queue, int(row[0]))
        return self.db.run(work)

    def leave(self, queue: str, caller: str) -> Deferred:
        """The caller hung up or timed out (its offered agent, if any, is idle again)."""
        def work(conn) -> bool:
            self._lock(conn, queue)
            row = conn.execute("SELECT agent FROM queue_callers WHERE queue = ? AND caller = ?",
                               (queue, caller)).fetchone()
            if row is None:
                return False
            if row[0] is not None:
                conn.execute("UPDATE queue_agents SET state = 'idle', caller = NULL, "
                             "node = NULL WHERE agent = ? AND caller = ?", (row[0], caller))
            conn.execute("DELETE FROM queue_callers WHERE queue = ? AND caller = ?",
                         (queue, caller))
            return True
        return self.db.run(work)

    def agent_idle(self, queue: str, agent: str, at: float) -> Deferred:
        """``agent`` (of any node) may be offered a call of ``queue``."""
        def work(conn) -> None:
            conn.execute("INSERT INTO queue_agents (agent, queue, state, caller, since) "
                         "VALUES (?, ?, 'idle', NULL, ?) ON CONFLICT (agent) DO UPDATE SET "
                         "queue = excluded.queue, state = 'idle', caller = NULL, node = NULL, "
                         "since = excluded.since", (agent, queue, at))
        return self.db.run(work)

    def agent_away(self, agent: str) -> Deferred:
        """Logged out or unreachable: never offered a call."""
        return self.db.run(lambda conn: conn.execute(
            "UPDATE queue_agents SET state = 'away' WHERE agent = ? AND state = 'idle'",
            (agent,)).rowcount > 0)

    def positions(self, queue: str) -> Deferred:
        """This node's waiting callers of ``queue`` -> their place among every node's, and
        how many callers of other nodes wait: fires with ``({caller: position}, others)``."""
        def work(conn):
            rows = conn.execute("SELECT caller, node FROM queue_callers WHERE queue = ? AND "
                                "state = 'waiting' ORDER BY arrival", (queue,)).fetchall()
            mine = {r[0]: i for i, r in enumerate(rows, 1) if r[1] == self.node}
            return mine, len(rows) - len(mine)
        return self.db.run(work)

    def agent_present(self, agent: str, queue: str, at: float) -> Deferred:
        """``agent`` is reachable: a new agent, or one ``away``, becomes idle (an agent
        offered, busy or in wrap-up is left as it is)."""
        def work(conn) -> None:
            conn.execute("INSERT INTO queue_agents (agent, queue, state, caller, since) "
                         "VALUES (?, ?, 'idle', NULL, ?) ON CONFLICT (agent) DO UPDATE SET "
                         "state = 'idle', since = excluded.since "
                         "WHERE queue_agents.state = 'away'", (agent, queue, at))
        return self.db.run(work)

    def agent_wrapup(self, agent: str, until: float) -> Deferred:
        """The agent's queue call ended: offered again from ``until``."""
        return self.db.run(lambda conn: conn.execute(
            "UPDATE queue_agents SET state = 'wrapup', caller = NULL, node = NULL, since = ? "
            "WHERE agent = ? AND state IN ('busy', 'offered')", (until, agent)).rowcount > 0)

    def agents(self) -> Deferred:
        """``{agent: (state, caller, since)}`` of every agent (for status and tests)."""
        return self.db.run(lambda conn: {r[0]: (r[1], r[2], float(r[3])) for r in conn.execute(
            "SELECT agent, state, caller, since FROM queue_agents")})

    def match(self, queue: str, agents=None, now: float | None = None,
              only_node: str | None = None) -> Deferred:
        """Offer the oldest waiting caller (any node) to an idle agent; fires with
        ``(caller, caller_node, agent)`` or None.

        ``agents``: the queue's agents (any agent row of theirs counts, whatever queue it
        was written for: an agent of two queues is one row, offered one call at a time);
        without it, the agents written for ``queue``.  ``now``: agents in wrap-up whose
        time has come count as idle.  ``only_node``: match only if the oldest waiting
        caller is that node's (the node holding the caller dials the agent), else None."""
        skip = " FOR UPDATE SKIP LOCKED" if self.db.dialect == "postgresql" else ""
        if agents is None:
            who, params = "queue = ?", (queue,)
        else:
            names = sorted(set(agents)) or [""]
            who, params = f"agent IN ({', '.join('?' for _ in names)})", tuple(names)
        free, free_params = "state = 'idle'", ()
        if now is not None:
            free, free_params = "(state = 'idle' OR (state = 'wrapup' AND since <= ?))", (now,)

        def work(conn):
            self._lock(conn, queue)
            caller = conn.execute("SELECT caller, node FROM queue_callers WHERE queue = ? "
                                  "AND state = 'waiting' ORDER BY arrival LIMIT 1",
                                  (queue,)).fetchone()
            if caller is None or (only_node is not None and caller[1] != only_node):
                return None
            agent = conn.execute(f"SELECT agent FROM queue_agents WHERE {who} AND {free} "
                                 "ORDER BY since, agent LIMIT 1" + skip,
                                 params + free_params).fetchone()
            if agent is None:
                return None
            conn.execute("UPDATE queue_agents SET state = 'offered', caller = ?, node = ? "
                         "WHERE agent = ?", (caller[0], caller[1], agent[0]))
            conn.execute("UPDATE queue_callers SET state = 'offered', agent = ? WHERE "
                         "queue = ? AND caller = ?", (agent[0], queue, caller[0]))
            return caller[0], caller[1], agent[0]
        return self.db.run(work)

    def finish(self, queue: str, caller: str, agent: str, answered: bool,
               at: float, rest_until: float | None = None) -> Deferred:
        """The offer's outcome: answered (caller leaves, agent busy) or not (both wait;
        with ``rest_until`` the agent is not offered a call before that time)."""
        def work(conn) -> None:
            self._lock(conn, queue)
            if answered:
                conn.execute("DELETE FROM queue_callers WHERE queue = ? AND caller = ?",
                             (queue, caller))
                conn.execute("UPDATE queue_agents SET state = 'busy', since = ? WHERE "
                             "agent = ? AND caller = ?", (at, agent, caller))
            else:
                conn.execute("UPDATE queue_callers SET state = 'waiting', agent = NULL WHERE "
                             "queue = ? AND caller = ? AND agent = ?", (queue, caller, agent))
                rest = rest_until is not None and rest_until > at
                conn.execute("UPDATE queue_agents SET state = ?, caller = NULL, node = NULL, "
                             "since = ? WHERE agent = ? AND caller = ?",
                             ("wrapup" if rest else "idle", rest_until if rest else at,
                              agent, caller))
        return self.db.run(work)


def _position(conn, queue: str, arrival: int) -> int:
    return int(conn.execute("SELECT count(*) FROM queue_callers WHERE queue = ? AND "
                            "state = 'waiting' AND arrival <= ?", (queue, arrival)).fetchone()[0])
