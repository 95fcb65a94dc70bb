"""Registrations in the database: the location service every node of a farm reads.

One row per (AOR, contact): where the phone registered from (``transport``, ``host``,
``port``), its Contact, when it expires, and which ``node`` took the REGISTER.  The
registrar keeps its in-memory location service as the fast path and writes each change
here; with PostgreSQL this table is the truth a node consults for a phone that another
node registered.  Rows are plain dicts: this layer knows nothing of SIP.
"""
from __future__ import annotations

from twisted.internet.defer import Deferred

from .migrations import migrate

FIELDS = ("aor", "contact_key", "contact", "transport", "host", "port", "expires_at",
          "updated_at", "q", "call_id", "cseq", "node", "path")

_SAVE = (f"INSERT INTO registrations ({', '.join(FIELDS)}) "
         f"VALUES ({', '.join('?' for _ in FIELDS)}) ON CONFLICT (aor, contact_key) DO UPDATE SET "
         + ", ".join(f"{f} = excluded.{f}" for f in FIELDS[2:]))
_ORDER = " ORDER BY COALESCE(q, 1.0) DESC, updated_at DESC, contact_key"


class InvalidRegistration(ValueError):
    """A row the caller built wrongly (no aor, contact or expiry)."""


def _row(row) -> dict:
    return {k: row[k] for k in row.keys()}


class RegistrationStore:
    def __init__(self, db, node: str) -> None:
        self.db = db
        self.node = node
        migrate(db)

    def save(self, registration: dict) -> Deferred:
        """Insert or refresh one binding (keys of :data:`FIELDS`; ``node`` defaults to
        this node's name).  Fires with ``(aor, contact_key)`` once committed."""
        reg = {"node": self.node, **registration}
        for key in ("aor", "contact_key", "contact", "expires_at", "updated_at"):
            if reg.get(key) is None:
                raise InvalidRegistration(f"a registration needs {key}")
        values = [reg.get(f) for f in FIELDS]

        def work(conn) -> tuple[str, str]:
            conn.execute(_SAVE, values)
            return reg["aor"], reg["contact_key"]
        return self.db.run(work)

    def remove(self, aor: str, contact_key: str) -> Deferred:
        """Fires with True if there was such a binding."""
        def work(conn) -> bool:
            cur = conn.execute("DELETE FROM registrations WHERE aor = ? AND contact_key = ?",
                               (aor, contact_key))
            return cur.rowcount > 0
        return self.db.run(work)

    def clear(self, aor: str) -> Deferred:
        """Every binding of ``aor`` (REGISTER with ``Contact: *``); fires with how many."""
        def work(conn) -> int:
            return conn.execute("DELETE FROM registrations WHERE aor = ?", (aor,)).rowcount
        return self.db.run(work)

    def lookup(self, aor: str, now: float) -> Deferred:
        """The unexpired bindings of ``aor``, highest q first, then most recently refreshed."""
        def work(conn) -> list[dict]:
            return [_row(r) for r in conn.execute(
                "SELECT * FROM registrations WHERE aor = ? AND expires_at > ?" + _ORDER,
                (aor, now))]
        return self.db.run(work)

    def current(self, now: float) -> Deferred:
        """Every unexpired binding of every node, by AOR."""
        def work(conn) -> list[dict]:
            return [_row(r) for r in conn.execute(
                "SELECT * FROM registrations WHERE expires_at > ? ORDER BY aor, "
                "COALESCE(q, 1.0) DESC, updated_at DESC, contact_key", (now,))]
        return self.db.run(work)

    def expire(self, now: float) -> Deferred:
        """Delete the bindings that expired; fires with how many."""
        def work(conn) -> int:
            return conn.execute("DELETE FROM registrations WHERE expires_at <= ?",
                                (now,)).rowcount
        return self.db.run(work)
