"""Each node's calls, published for the others (PostgreSQL mode): ``GET /v1/calls`` on any
node lists the whole farm.

Every node replaces its own rows of ``node_calls`` with its current calls every
housekeeping round (2 s), in one transaction; a reader takes the other nodes' rows that
are fresh (written within ``max_age`` seconds), so a node that died stops being listed
after ``max_age`` and its rows are deleted by the next node that publishes.  A call shows
up on other nodes, or leaves their list, at most one round late.
"""
from __future__ import annotations

import json

from twisted.internet.defer import Deferred

from .migrations import migrate

#: Rows of a node that has not published for this long are deleted.
FORGET_AFTER = 60.0


class NodeCalls:
    def __init__(self, db, node: str) -> None:
        self.db, self.node = db, node
        migrate(db)

    def publish(self, calls: list[dict], now: float) -> Deferred:
        """This node's calls are now exactly ``calls`` (each with an ``id``)."""
        rows = [(self.node, str(c["id"]), json.dumps(c, sort_keys=True, default=str), now)
                for c in calls]

        def work(conn) -> int:
            conn.execute("DELETE FROM node_calls WHERE node = ? OR updated_at < ?",
                         (self.node, now - FORGET_AFTER))
            if rows:
                conn.executemany("INSERT INTO node_calls (node, call_id, body, updated_at) "
                                 "VALUES (?, ?, ?, ?)", rows)
            return len(rows)
        return self.db.run(work)

    def others(self, now: float, max_age: float = 10.0) -> Deferred:
        """The other nodes' calls, each with its ``node``, oldest node first."""
        def work(conn) -> list[dict]:
            return [{**json.loads(r[2]), "node": r[0]} for r in conn.execute(
                "SELECT node, call_id, body FROM node_calls WHERE node <> ? AND "
                "updated_at >= ? ORDER BY node, call_id", (self.node, now - max_age))]
        return self.db.run(work)
