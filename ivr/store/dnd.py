"""The do-not-disturb list: E.164 numbers that must not receive promotional calls.

Kept in the ``dnd`` table of the same database (SQLite, or PostgreSQL) and mirrored in memory, so the
check on the call path (:meth:`DndList.contains`) never touches the disk.  Changes are
applied to the mirror at once and committed on the writer thread.

In a farm (PostgreSQL) another node's changes reach this mirror through :meth:`reload`,
which ``ivr serve``'s housekeeping calls every round (2 s): a number added through node A's
API is refused on node B at most one round later.  A reload that overlaps a change made
here is not applied (the next one is), so it never undoes a change of this node.
"""
from __future__ import annotations

import sqlite3

from twisted.internet.defer import Deferred, succeed

from .db import Database
from .migrations import migrate


class DndList:
    def __init__(self, db: Database) -> None:
        self.db = db
        migrate(db)  # the dnd table is in migration 1
        rows = db.read_now(lambda c: c.execute("SELECT number, reason, added_at FROM dnd")
                           .fetchall())
        self._entries: dict[str, dict] = _mirror(rows)
        self._changes = 0    # local changes so far (a reload overlapping one is dropped)
        self._in_flight = 0  # local changes not committed yet

    def reload(self) -> Deferred:
        """Read the whole list again (other nodes' changes); fires with True if the mirror
        was replaced, False if a local change overlapped (left for the next reload)."""
        changes = self._changes
        if self._in_flight:  # a read now might not see them yet
            return succeed(False)

        def got(rows) -> bool:
            if changes != self._changes:
                return False
            self._entries = _mirror(rows)
            return True
        return self.db.run(lambda c: c.execute("SELECT number, reason, added_at FROM dnd")
                           .fetchall()).addCallback(got)

    def contains(self, e164: str) -> bool:
        return e164 in self._entries

    def entries(self) -> list[dict]:
        return [dict(self._entries[n]) for n in sorted(self._entries)]

    def add(self, e164: str, reason: str | None, now: float) -> Deferred:
        """Add or update; fires with True if the number was new."""
        new = e164 not in self._entries
        added = now if new else self._entries[e164]["added_at"]
        self._entries[e164] = {"number": e164, "reason": reason, "added_at": added}

        def work(conn: sqlite3.Connection) -> bool:
            conn.execute("INSERT INTO dnd (number, reason, added_at) VALUES (?, ?, ?) "
                         "ON CONFLICT(number) DO UPDATE SET reason = excluded.reason",
                         (e164, reason, now))
            return new
        return self._write(work)

    def remove(self, e164: str) -> Deferred:
        """Fires with True if the number was on the list."""
        present = self._entries.pop(e164, None) is not None

        def work(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM dnd WHERE number = ?", (e164,))
            return present
        return self._write(work)

    def _write(self, work) -> Deferred:
        self._changes += 1
        self._in_flight += 1

        def landed(result):
            self._in_flight -= 1
            return result
        return self.db.run(work).addBoth(landed)


def _mirror(rows) -> dict[str, dict]:
    return {r[0]: {"number": r[0], "reason": r[1], "added_at": r[2]} for r in rows}
