"""The do-not-disturb list: E.164 numbers that must not receive promotional calls.

Kept in the ``dnd`` table of the same database (SQLite, or PostgreSQL) and mirrored in memory, so the
check on the call path (:meth:`DndList.contains`) never touches the disk.  Changes are
applied to the mirror at once and committed on the writer thread.
"""
from __future__ import annotations

import sqlite3

from twisted.internet.defer import Deferred

from .db import Database
from .migrations import migrate


class DndList:
    def __init__(self, db: Database) -> None:
        self.db = db
        migrate(db)  # the dnd table is in migration 1
        rows = db.read_now(lambda c: c.execute("SELECT number, reason, added_at FROM dnd")
                           .fetchall())
        self._entries: dict[str, dict] = {
            r[0]: {"number": r[0], "reason": r[1], "added_at": r[2]} for r in rows}

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
        return self.db.run(work)

    def remove(self, e164: str) -> Deferred:
        """Fires with True if the number was on the list."""
        present = self._entries.pop(e164, None) is not None

        def work(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM dnd WHERE number = ?", (e164,))
            return present
        return self.db.run(work)
