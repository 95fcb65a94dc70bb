"""Click-to-call sessions and their events in the database, readable by every node.

The node running a session (``node``) saves its state after each change and appends each
event (numbered from 1 per session, in order).  Any node can read a session and its
events, and ask for it to be cancelled (:meth:`SessionStore.request_cancel`); the owning
node picks up those requests (:meth:`SessionStore.cancel_requests`).  ``body`` is the
session's JSON representation as the API shows it.
"""
from __future__ import annotations

import json

from twisted.internet.defer import Deferred

from .migrations import migrate
from .outbox import enqueue

_SAVE = ("INSERT INTO c2c_sessions (session_id, node, state, final, created_at, updated_at, "
         "body) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET "
         "node = excluded.node, state = excluded.state, final = excluded.final, "
         "updated_at = excluded.updated_at, body = excluded.body")


def _session(row) -> dict:
    return {"session_id": row["session_id"], "node": row["node"], "state": row["state"],
            "final": bool(row["final"]), "created_at": row["created_at"],
            "updated_at": row["updated_at"], "body": json.loads(row["body"]),
            "cancel_requested_at": row["cancel_requested_at"]}


class SessionStore:
    def __init__(self, db, node: str) -> None:
        self.db = db
        self.node = node
        migrate(db)

    def save(self, session_id: str, state: str, final: bool, body: dict,
             created_at: float, updated_at: float) -> Deferred:
        """Insert or update the session as this node sees it; fires once committed."""
        values = (session_id, self.node, state, int(bool(final)), created_at, updated_at,
                  json.dumps(body, sort_keys=True))

        def work(conn) -> str:
            conn.execute(_SAVE, values)
            return session_id
        return self.db.run(work, durable=True)  # an upsert: safe to repeat after an outage

    def record(self, session_id: str, state: str, final: bool, body: dict,
               created_at: float, event: dict, webhook_url: str | None = None,
               webhook_data: dict | None = None) -> Deferred:
        """One state change in one transaction: the session row as it is now, its event
        number ``event["seq"]`` and, with ``webhook_url``, the status webhook reporting it
        (``ivr.store.outbox``), so that the event and its webhook are committed together
        or not at all.  Safe to repeat (it waits out a database outage, in order)."""
        seq, at = int(event["seq"]), float(event["at"])
        values = (session_id, self.node, state, int(bool(final)), created_at, at,
                  json.dumps(body, sort_keys=True))
        text = json.dumps(event, sort_keys=True)

        def work(conn) -> int:
            conn.execute(_SAVE, values)
            conn.execute("INSERT INTO c2c_events (session_id, seq, at, event) VALUES "
                         "(?, ?, ?, ?) ON CONFLICT (session_id, seq) DO NOTHING",
                         (session_id, seq, at, text))
            if webhook_url:
                enqueue(conn, session_id, seq, webhook_url, event["event"],
                        webhook_data if webhook_data is not None else event, at)
            return seq
        return self.db.run(work, durable=True)

    def add_event(self, session_id: str, at: float, event: dict) -> Deferred:
        """Append an event; fires with its number (1, 2, ...) in the session."""
        text = json.dumps(event, sort_keys=True)

        def work(conn) -> int:
            row = conn.execute("SELECT COALESCE(max(seq), 0) FROM c2c_events "
                               "WHERE session_id = ?", (session_id,)).fetchone()
            seq = int(row[0]) + 1
            conn.execute("INSERT INTO c2c_events (session_id, seq, at, event) "
                         "VALUES (?, ?, ?, ?)", (session_id, seq, at, text))
            return seq
        return self.db.run(work)

    def get(self, session_id: str) -> Deferred:
        """The session with its ``events`` in order, or None."""
        def work(conn) -> dict | None:
            row = conn.execute("SELECT * FROM c2c_sessions WHERE session_id = ?",
                               (session_id,)).fetchone()
            if row is None:
                return None
            out = _session(row)
            out["events"] = [json.loads(r[0]) for r in conn.execute(
                "SELECT event FROM c2c_events WHERE session_id = ? ORDER BY seq",
                (session_id,))]
            return out
        return self.db.run(work)

    def recent(self, limit: int = 100) -> Deferred:
        """Sessions of every node, newest first (without events)."""
        def work(conn) -> list[dict]:
            return [_session(r) for r in conn.execute(
                "SELECT * FROM c2c_sessions ORDER BY created_at DESC, session_id LIMIT ?",
                (int(limit),))]
        return self.db.run(work)

    def request_cancel(self, session_id: str, at: float) -> Deferred:
        """Ask the owning node to cancel; fires with the session's node, or None if there
        is no such session or it has already ended."""
        def work(conn) -> str | None:
            row = conn.execute("SELECT node, final FROM c2c_sessions WHERE session_id = ?",
                               (session_id,)).fetchone()
            if row is None or row[1]:
                return None
            conn.execute("UPDATE c2c_sessions SET cancel_requested_at = ? WHERE "
                         "session_id = ? AND cancel_requested_at IS NULL", (at, session_id))
            return row[0]
        return self.db.run(work)

    def cancel_requests(self) -> Deferred:
        """Ids of this node's running sessions that another node asked to cancel."""
        def work(conn) -> list[str]:
            return [r[0] for r in conn.execute(
                "SELECT session_id FROM c2c_sessions WHERE node = ? AND final = 0 AND "
                "cancel_requested_at IS NOT NULL ORDER BY cancel_requested_at, session_id",
                (self.node,))]
        return self.db.run(work)

    def purge(self, before: float) -> Deferred:
        """Forget ended sessions last changed before ``before``; fires with how many."""
        def work(conn) -> int:
            old = "SELECT session_id FROM c2c_sessions WHERE final = 1 AND updated_at < ?"
            conn.execute(f"DELETE FROM c2c_events WHERE session_id IN ({old})", (before,))
            return conn.execute("DELETE FROM c2c_sessions WHERE final = 1 AND "
                                "updated_at < ?", (before,)).rowcount
        return self.db.run(work)
