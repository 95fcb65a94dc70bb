"""SIP failure bans a farm shares (migration 9): ``sip_bans`` and ``sip_failures``.

Each node's throttle (:class:`ivr.sip.throttle.Throttle`, ``shared=True``) decides on its
own, in memory, on every request; every housekeeping round (2 s) the node hands what it
decided since the last round to :meth:`FarmBans.exchange`, which in one transaction:

* writes the failed authentications counted there (``sip_failures``: address, node, when)
  and forgets an address's failures once it authenticated;
* writes the bans started there (``sip_bans``; a ban already there is only lengthened);
* forgets failures older than ``window`` and bans that ended;
* bans every address that failed ``max_failures`` times within ``window`` on all nodes
  together (a password guesser spreading its INVITEs over the nodes), and forgets its
  failures;
* returns the bans in force, ``(address, failures, since, until)``, oldest first, which
  the node then holds in memory (:meth:`Throttle.apply_farm`).

So a ban decided on one node holds on every node within a round, and a guesser gets at
most ``max_failures`` attempts per round and node past the farm's count.  An address is
lifted farm-wide by :meth:`FarmBans.lift` (``DELETE /v1/security/bans/{address}``); each
node ends its copy at its next round.  Times are the nodes' clocks (keep them in step).
"""
from __future__ import annotations

from twisted.internet.defer import Deferred

from .migrations import migrate

_COLUMNS = "address, failures, since, until"


class FarmBans:
    def __init__(self, db, node: str, *, max_failures: int, window: float,
                 ban_time: float) -> None:
        if max_failures < 1 or window <= 0 or ban_time <= 0:
            raise ValueError("FarmBans needs positive limits")
        self.db, self.node = db, node
        self.max_failures, self.window, self.ban_time = max_failures, window, ban_time
        migrate(db)

    @classmethod
    def from_settings(cls, db, node: str, security) -> "FarmBans":
        """With the limits of :class:`ivr.config.extensions.SecuritySettings`."""
        return cls(db, node, max_failures=security.max_failures,
                   window=security.failure_window, ban_time=security.ban_time)

    def exchange(self, failures=(), bans=(), successes=(), *, now: float) -> Deferred:
        """Write this node's journal (``failures``: ``(address, when)``; ``bans``: objects
        with ``address, failures, since, until``; ``successes``: ``(address, when)``),
        ban who failed too often farm-wide; fires with the bans in force at ``now``."""
        def work(conn) -> list[tuple]:
            for address, at in failures:
                conn.execute("INSERT INTO sip_failures (address, node, at) VALUES (?, ?, ?)",
                             (address, self.node, at))
            for address, at in successes:
                conn.execute("DELETE FROM sip_failures WHERE address = ? AND at <= ?",
                             (address, at))
            for ban in bans:
                _put(conn, ban.address, ban.failures, ban.since, ban.until, self.node)
            conn.execute("DELETE FROM sip_failures WHERE at <= ?", (now - self.window,))
            conn.execute("DELETE FROM sip_bans WHERE until <= ?", (now,))
            over = conn.execute(
                "SELECT address, count(*) FROM sip_failures GROUP BY address "
                "HAVING count(*) >= ?", (self.max_failures,)).fetchall()
            for address, count in over:
                _put(conn, address, int(count), now, now + self.ban_time, self.node)
                conn.execute("DELETE FROM sip_failures WHERE address = ?", (address,))
            return _in_force(conn, now)
        return self.db.run(work)

    def bans(self, now: float) -> Deferred:
        """The farm's bans in force at ``now``, ``(address, failures, since, until)``."""
        return self.db.run(lambda conn: _in_force(conn, now))

    def lift(self, address: str, now: float) -> Deferred:
        """End ``address``'s ban farm-wide (and forget its failures); fires with the ban
        that was in force, or None."""
        def work(conn):
            rows = conn.execute(f"SELECT {_COLUMNS} FROM sip_bans WHERE address = ? "
                                "AND until > ?", (address, now)).fetchall()
            conn.execute("DELETE FROM sip_bans WHERE address = ?", (address,))
            conn.execute("DELETE FROM sip_failures WHERE address = ?", (address,))
            return _row(rows[0]) if rows else None
        return self.db.run(work)


def _put(conn, address: str, failures: int, since: float, until: float, node: str) -> None:
    conn.execute(f"INSERT INTO sip_bans ({_COLUMNS}, node) VALUES (?, ?, ?, ?, ?) "
                 "ON CONFLICT (address) DO UPDATE SET until = excluded.until, "
                 "failures = excluded.failures WHERE sip_bans.until < excluded.until",
                 (address, failures, since, until, node))


def _row(row) -> tuple:
    return (row[0], int(row[1]), float(row[2]), float(row[3]))


def _in_force(conn, now: float) -> list[tuple]:
    return [_row(r) for r in conn.execute(
        f"SELECT {_COLUMNS} FROM sip_bans WHERE until > ? ORDER BY since, address", (now,))]
