"""The webhook outbox: status events written in the database, delivered by any live node.

A status event is a row of ``webhook_outbox`` keyed by ``(key, seq)``: ``key`` is the call
or click-to-call session it reports, ``seq`` counts from 1 per key.  :func:`enqueue` adds
one inside a caller's transaction (``work(conn)``), so the event is committed together with
the state change it reports (:meth:`ivr.store.sessions.SessionStore.record`) or not at all.
The payload is stored whole, with its ``id`` (``"{key}:{seq}"``, the idempotency key): a
delivery repeated by another node carries the same body.

Delivery (``ivr.api.webhooks.OutboxDelivery``) claims rows with :meth:`Outbox.claim`:

* only the *head* of a key (its lowest undelivered, not dropped ``seq``) can be claimed,
  so one call's events go out one at a time and in order, whichever node sends them;
* a claim is a lease (``claimed_until``): another node takes the row once the lease has
  run out (the claimer died or hung), which makes delivery at-least-once;
* on PostgreSQL the candidate rows are locked with ``FOR UPDATE SKIP LOCKED`` while the
  lease is written, so two nodes claiming at once never take the same row; SQLite has one
  writer (one node), whose transaction is already exclusive.

:meth:`Outbox.delivered` marks a row delivered (only for the claimer still holding it;
delivered rows are kept until :meth:`Outbox.purge`, so that ``seq`` keeps counting);
:meth:`Outbox.retry` gives it back with a later ``next_at``; :meth:`Outbox.drop` marks it
dropped after the last attempt (kept for inspection, no longer blocks its key).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from twisted.internet.defer import Deferred

from .migrations import migrate

#: Seconds a claimer may hold a row before another node may take it (longer than one
#: HTTP attempt's timeout).
DEFAULT_LEASE = 30.0


@dataclass(frozen=True)
class OutboxItem:
    key: str
    seq: int
    url: str
    payload: dict
    attempts: int     # attempts made before this claim


def payload_of(key: str, seq: int, event: str, data: dict, at: float) -> dict:
    """The JSON body of event ``seq`` of ``key`` (``id`` is the idempotency key)."""
    return {"id": f"{key}:{seq}", "call_id": key, "event": event, "sequence": seq,
            "timestamp": at, "data": data}


def enqueue(conn, key: str, seq: int, url: str, event: str, data: dict, at: float) -> dict:
    """Add event ``seq`` (1, 2, ... per key, counted by the node that owns the call) for
    ``key`` inside the caller's transaction; returns the payload as it will be POSTed.
    Writing the same event (name and time) at the same ``(key, seq)`` twice keeps the
    first (safe to repeat after an outage whose commit was never acknowledged).

    A different event at a ``seq`` already taken means the sender's counter started again
    (it forgets a call at its final event, and a late event of that call counts from 1):
    that event is numbered after the key's last row instead of being lost, unless that
    last row is already this very event (a repeat of a renumbered write)."""
    row = conn.execute("SELECT payload FROM webhook_outbox WHERE key = ? AND seq = ?",
                       (key, seq)).fetchone()
    if row is not None and not _same_event(json.loads(row[0]), event, at):
        while True:
            last = conn.execute("SELECT seq, payload FROM webhook_outbox WHERE key = ? "
                                "ORDER BY seq DESC LIMIT 1", (key,)).fetchone()
            if _same_event(json.loads(last[1]), event, at):
                return json.loads(last[1])
            seq = int(last[0]) + 1
            payload = payload_of(key, seq, event, data, at)
            if _insert(conn, key, seq, url, payload, at):
                return payload
    payload = payload_of(key, seq, event, data, at)
    _insert(conn, key, seq, url, payload, at)
    return payload


def _same_event(stored: dict, event: str, at: float) -> bool:
    return stored.get("event") == event and stored.get("timestamp") == at


def _insert(conn, key: str, seq: int, url: str, payload: dict, at: float) -> bool:
    return conn.execute("INSERT INTO webhook_outbox (key, seq, url, payload, created_at, "
                        "next_at, attempts, dropped) VALUES (?, ?, ?, ?, ?, ?, 0, 0) "
                        "ON CONFLICT (key, seq) DO NOTHING",
                        (key, seq, url, json.dumps(payload, sort_keys=True), at,
                         at)).rowcount > 0


_OPEN = "dropped = 0 AND delivered_at IS NULL"
_HEADS = ("SELECT o.key, o.seq FROM webhook_outbox o WHERE o.dropped = 0 "
          "AND o.delivered_at IS NULL AND o.next_at <= ? "
          "AND (o.claimed_until IS NULL OR o.claimed_until <= ?) AND o.seq = ("
          "SELECT min(i.seq) FROM webhook_outbox i WHERE i.key = o.key AND i.dropped = 0 "
          "AND i.delivered_at IS NULL) ORDER BY o.created_at, o.key LIMIT ?")


class Outbox:
    """The outbox of one node (``node`` names the claimer)."""

    def __init__(self, db, node: str, lease: float = DEFAULT_LEASE) -> None:
        self.db, self.node, self.lease = db, node, lease
        migrate(db)

    def add(self, key: str, seq: int, url: str, event: str, data: dict,
            at: float) -> Deferred:
        """One event in its own transaction (no state row to go with it); fires with the
        payload once committed.  During a database outage it waits, in order, and is
        written when the database is back (an upsert: safe to repeat)."""
        return self.db.run(lambda conn: enqueue(conn, key, seq, url, event, data, at),
                           durable=True)

    def claim(self, now: float, limit: int = 50) -> Deferred:
        """Lease up to ``limit`` deliverable heads to this node; fires with OutboxItems in
        the order they were written."""
        locking = " FOR UPDATE SKIP LOCKED" if self.db.dialect == "postgresql" else ""

        def work(conn) -> list[OutboxItem]:
            heads = [(r[0], r[1]) for r in conn.execute(_HEADS + locking,
                                                        (now, now, int(limit)))]
            items = []
            for key, seq in heads:
                conn.execute("UPDATE webhook_outbox SET claimed_by = ?, claimed_until = ? "
                             "WHERE key = ? AND seq = ?", (self.node, now + self.lease,
                                                           key, seq))
                r = conn.execute("SELECT url, payload, attempts FROM webhook_outbox "
                                 "WHERE key = ? AND seq = ?", (key, seq)).fetchone()
                items.append(OutboxItem(key, seq, r[0], json.loads(r[1]), int(r[2])))
            return items
        return self.db.run(work)

    def _mine(self, sql: str, params: tuple) -> Deferred:
        def work(conn) -> bool:
            return conn.execute(sql + " WHERE key = ? AND seq = ? AND claimed_by = ?",
                                params).rowcount > 0
        return self.db.run(work)

    def delivered(self, item: OutboxItem, at: float) -> Deferred:
        """The receiver took it (kept until :meth:`purge`, so that ``seq`` keeps counting).
        Fires False if the lease had been lost meanwhile."""
        return self._mine("UPDATE webhook_outbox SET delivered_at = ?, attempts = attempts + 1, "
                          "claimed_by = NULL, claimed_until = NULL",
                          (at, item.key, item.seq, self.node))

    def retry(self, item: OutboxItem, attempts: int, next_at: float) -> Deferred:
        """A failed attempt: the row may be claimed again from ``next_at``."""
        return self._mine("UPDATE webhook_outbox SET attempts = ?, next_at = ?, "
                          "claimed_by = NULL, claimed_until = NULL",
                          (attempts, next_at, item.key, item.seq, self.node))

    def drop(self, item: OutboxItem, attempts: int) -> Deferred:
        """The last attempt failed: kept as dropped, the key's next event may go."""
        return self._mine("UPDATE webhook_outbox SET attempts = ?, dropped = 1, "
                          "claimed_by = NULL, claimed_until = NULL",
                          (attempts, item.key, item.seq, self.node))

    def waiting(self) -> Deferred:
        """How many events are still to be delivered (every node's)."""
        return self.db.run(lambda conn: int(conn.execute(
            f"SELECT count(*) FROM webhook_outbox WHERE {_OPEN}").fetchone()[0]))

    def purge(self, before: float) -> Deferred:
        """Forget delivered and dropped events written before ``before``."""
        return self.db.run(lambda conn: conn.execute(
            f"DELETE FROM webhook_outbox WHERE NOT ({_OPEN}) AND created_at < ?",
            (before,)).rowcount)
