"""Which nodes of a farm are alive (PostgreSQL mode), and clearing what a dead node left in the
farm's queue state.

Every node writes its heartbeat row (``node_heartbeats``: ``started_at``, ``seen_at``) each
housekeeping round (2 s).  In the same transaction it looks for nodes whose heartbeat is
older than ``dead_after`` seconds (:data:`DEAD_AFTER`, 10 s: five missed rounds) and clears
what they left in the queues (``ivr/store/queue_state.py``): their waiting or offered
callers are deleted (those calls died with the node) and the agents they had offered a
call to or connected are idle again.  Otherwise a dead node's oldest caller would stay at
the head of the farm's line forever -- only the node holding a caller matches it, strict
arrival order makes everyone wait behind it -- and its agents would never be offered a
call again.  Any live node does it, whichever comes first; doing it twice is harmless.

A node starting (:meth:`NodeLiveness.start`, before it takes calls) clears its *own* rows
the same way: a node restarted with the same ``--node-id`` within ``dead_after`` seconds
would otherwise never look dead, and its previous life's callers would block the line.

The nodes' clocks are compared (heartbeats are written with each node's time): keep them
in step with NTP, well within ``dead_after``.
"""
from __future__ import annotations

from twisted.internet.defer import Deferred

from .migrations import migrate

#: Seconds without a heartbeat after which a node counts as dead and its queue rows are
#: cleared (housekeeping writes one every 2 s).
DEAD_AFTER = 10.0


class NodeLiveness:
    def __init__(self, db, node: str, dead_after: float = DEAD_AFTER) -> None:
        if dead_after <= 0:
            raise ValueError("dead_after must be positive")
        self.db, self.node, self.dead_after = db, node, dead_after
        migrate(db)

    def start(self, at: float) -> dict[str, int]:
        """At start, synchronously: this node's heartbeat, and its rows of a previous life
        cleared; returns what was cleared ``{"callers": n, "agents": m}``."""
        def work(conn) -> dict[str, int]:
            _beat(conn, self.node, at, started=True)
            return _clear(conn, [self.node], at)
        return self.db.read_now(work)

    def beat(self, at: float) -> Deferred:
        """Housekeeping: this node is alive at ``at``; the rows of nodes silent for longer
        than ``dead_after`` are cleared.  Fires with ``{node: {"callers": n, "agents": m}}``
        of the nodes that had something to clear."""
        def work(conn) -> dict[str, dict[str, int]]:
            _beat(conn, self.node, at, started=False)
            dead = [r[0] for r in conn.execute(
                "SELECT node FROM node_heartbeats WHERE seen_at < ? AND node <> ? ORDER BY node",
                (at - self.dead_after, self.node))]
            out = {}
            for node in dead:
                cleared = _clear(conn, [node], at)
                if any(cleared.values()):
                    out[node] = cleared
            return out
        return self.db.run(work)

    def nodes(self, at: float) -> Deferred:
        """``{node: alive}`` of every node that ever beat (for status and tests)."""
        return self.db.run(lambda conn: {r[0]: float(r[1]) >= at - self.dead_after for r in
                                         conn.execute("SELECT node, seen_at FROM node_heartbeats")})


def _beat(conn, node: str, at: float, started: bool) -> None:
    update = "started_at = excluded.started_at, seen_at = excluded.seen_at" if started \
        else "seen_at = excluded.seen_at"
    conn.execute("INSERT INTO node_heartbeats (node, started_at, seen_at) VALUES (?, ?, ?) "
                 f"ON CONFLICT (node) DO UPDATE SET {update}", (node, at, at))


def _clear(conn, nodes: list[str], at: float) -> dict[str, int]:
    marks = ", ".join("?" for _ in nodes)
    callers = conn.execute(f"DELETE FROM queue_callers WHERE node IN ({marks})",
                           tuple(nodes)).rowcount
    agents = conn.execute("UPDATE queue_agents SET state = 'idle', caller = NULL, node = NULL, "
                          f"since = ? WHERE node IN ({marks}) AND state IN ('offered', 'busy')",
                          (at, *nodes)).rowcount
    return {"callers": max(callers, 0), "agents": max(agents, 0)}
