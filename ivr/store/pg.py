"""The PostgreSQL backend: the interface of :class:`ivr.store.db.Database` over psycopg 3.

Work is a callable ``work(conn)`` exactly as for SQLite: ``conn.execute(sql, params)`` with
``?`` placeholders returns a cursor whose rows answer ``row[0]``, ``row["name"]`` and
``row.keys()`` (like ``sqlite3.Row``), so the stores above run one SQL text on both backends.
Each ``run`` is one transaction on a connection from a small pool (:class:`Pool`), on a
worker thread (never on the reactor's); its Deferred fires on the reactor thread after the
commit.  ``threaded=False`` runs inline on the caller's thread (tests, tools).

Outages.  An error that says the server cannot be reached (connection refused or lost, no
connection from the pool in time) marks the database *unavailable*: logged once, the
availability listeners are told (``ivr serve`` then answers new calls 503 with
Retry-After), and a probe runs every ``retry_interval`` seconds until the server answers.
While it is down, ``run(work, durable=True)`` (CDRs: upserts, safe to repeat) queues the
work in order and fires its Deferred once it has been written after the return; other work
fails at once with :class:`StoreUnavailable`.  The pool replaces its broken connections by
itself; nothing has to be restarted.
"""
from __future__ import annotations

import re
from collections import deque
import threading
from typing import Any, Callable

import psycopg
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from .db import StoreClosed, StoreUnavailable
from .migrations import pg_ddl

log = Logger(namespace="ivr.store")

class PoolExhausted(psycopg.OperationalError):
    """No connection came free in time (every one busy on a server that does not answer)."""


#: Errors that mean "the database server cannot be reached", not "this statement is wrong".
OUTAGE = (psycopg.OperationalError, psycopg.InterfaceError)

#: The advisory lock key held while migrating ("ivr" schema), so that two nodes starting
#: at once do not both migrate.
MIGRATION_LOCK = 0x697672


class Row:
    """One result row: by position, by column name, and ``keys()`` (as ``sqlite3.Row``)."""

    __slots__ = ("_values", "_names")

    def __init__(self, values: tuple, names: dict[str, int]) -> None:
        self._values, self._names = values, names

    def __getitem__(self, key):
        if isinstance(key, str):
            return self._values[self._names[key]]
        return self._values[key]

    def keys(self) -> list[str]:
        return list(self._names)

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._names, self._values))!r})"


def _row_factory(cursor):
    names = {c.name: i for i, c in enumerate(cursor.description or ())}
    return lambda values: Row(tuple(values), names)


_translated: dict[str, str] = {}


def translate(sql: str) -> str:
    """``?`` placeholders (sqlite3's qmark style) -> psycopg's ``%s`` (and ``%`` -> ``%%``)."""
    out = _translated.get(sql)
    if out is None:
        out = _translated[sql] = sql.replace("%", "%%").replace("?", "%s")
    return out


class PgConnection:
    """What ``work(conn)`` receives: sqlite3's calling convention on a psycopg connection."""

    dialect = "postgresql"

    def __init__(self, conn: psycopg.Connection) -> None:
        self.raw = conn

    def execute(self, sql: str, params=None):
        cur = self.raw.cursor(row_factory=_row_factory)
        if params is None or (not params and "?" not in sql):
            cur.execute(sql)
        else:
            cur.execute(translate(sql), tuple(params))
        return cur

    def executemany(self, sql: str, seq):
        cur = self.raw.cursor(row_factory=_row_factory)
        cur.executemany(translate(sql), [tuple(p) for p in seq])
        return cur


class Pool:
    """At most ``size`` connections, idle ones kept for the next transaction.

    A connection that broke is dropped, and so are the idle ones (a server that dropped one
    has usually dropped them all).  A transaction that fails for an outage on a connection
    that had been idle is tried once more on a fresh one: after the server restarted while
    the node was idle, the first write goes through instead of reporting an outage."""

    def __init__(self, url: str, size: int, connect_timeout: float) -> None:
        self.url, self.size, self.connect_timeout = url, size, connect_timeout
        self._idle: list[psycopg.Connection] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self.connects = 0  # connections opened so far (tests, metrics)

    def transaction(self, work: Callable[[psycopg.Connection], Any]) -> Any:
        """``work(conn)`` then commit; rolled back if it raises."""
        if not self._slots.acquire(timeout=max(1.0, 4 * self.connect_timeout)):
            raise PoolExhausted("no database connection came free in time")
        try:
            conn, reused = self._take()
            try:
                return self._run(conn, work)
            except OUTAGE:
                if not reused:
                    raise
                self.discard_idle()
                return self._run(self._connect(), work)
        finally:
            self._slots.release()

    def _run(self, conn: psycopg.Connection, work) -> Any:
        try:
            value = work(conn)
            conn.commit()
        except BaseException:
            if conn.broken or conn.closed:
                conn.close()
                self.discard_idle()
            else:
                try:
                    conn.rollback()
                except psycopg.Error:
                    conn.close()
                    raise
                self._give_back(conn)
            raise
        self._give_back(conn)
        return value

    def _take(self) -> tuple[psycopg.Connection, bool]:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not (conn.closed or conn.broken):
                    return conn, True
        return self._connect(), False

    def _connect(self) -> psycopg.Connection:
        self.connects += 1
        return psycopg.connect(self.url, autocommit=False,
                               connect_timeout=max(1, round(self.connect_timeout)))

    def _give_back(self, conn: psycopg.Connection) -> None:
        with self._lock:
            if len(self._idle) < self.size:
                self._idle.append(conn)
                return
        conn.close()

    def discard_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def close(self) -> None:
        self.discard_idle()


class PgDatabase:
    """A pool of connections to one PostgreSQL database, used like :class:`Database`."""

    dialect = "postgresql"

    def __init__(self, url: str, *, threaded: bool = True, reactor=None,
                 max_size: int = 4, connect_timeout: float = 3.0,
                 retry_interval: float = 1.0) -> None:
        self.url = url
        self._threaded = threaded
        self._closed = False
        self.available = True
        self._pending: deque[tuple[Callable, Deferred]] = deque()
        self._listeners: list[Callable[[bool], Any]] = []
        self.retry_interval = retry_interval
        self._probe_call = None
        self._probing = False
        self._beating = False
        self._pool = Pool(url, max_size, connect_timeout)
        try:  # unreachable at start: an error for the caller, not an outage to wait out
            self.read_now(lambda conn: conn.execute("SELECT 1").fetchone())
        except OUTAGE as exc:
            raise StoreUnavailable(f"database {self.url_for_log()} unreachable: "
                                   f"{str(exc).strip().splitlines()[0]}") from None
        if reactor is None and threaded:
            from twisted.internet import reactor as global_reactor
            reactor = global_reactor
        self._reactor = reactor
        if threaded:
            from twisted.python.threadpool import ThreadPool
            self._threads = ThreadPool(minthreads=1, maxthreads=max_size, name="postgresql")
            self._threads.start()

    # -- the Database interface ----------------------------------------------------------

    def ensure_schema(self, statements: list[str]) -> None:
        """Run DDL synchronously (startup only), under the migration lock."""
        def work(conn: PgConnection) -> None:
            for statement in statements:
                conn.execute(pg_ddl(statement))
        self.run_locked(work)

    def run_locked(self, work: Callable[[PgConnection], Any]) -> Any:
        """``work`` in one transaction holding the migration advisory lock (startup)."""
        def locked(conn: psycopg.Connection) -> Any:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            return work(PgConnection(conn))
        return self._pool.transaction(locked)

    def read_now(self, work: Callable[[PgConnection], Any]) -> Any:
        """Synchronous work on the caller's thread (startup: loading caches)."""
        return self._transaction(work)

    def run(self, work: Callable[[PgConnection], Any], *, durable: bool = False) -> Deferred:
        """``work(conn)`` in its own transaction; fires with its result after the commit.
        ``durable``: during an outage, wait for the database instead of failing."""
        if self._closed:
            return fail(StoreClosed(self.url_for_log()))
        if not self.available:
            if durable:
                d: Deferred = Deferred()
                self._pending.append((work, d))
                return d
            return fail(StoreUnavailable("the database is unreachable"))
        result: Deferred = Deferred()
        self._attempt(work, result, durable)
        return result

    def heartbeat(self) -> None:
        """Check the server now and then (``ivr serve``'s housekeeping), so that an outage
        is noticed (and new calls refused) even while nothing is being written."""
        if self.available and not self._closed and not self._beating:
            self._beating = True

            def done(result):
                self._beating = False
                return None
            self.run(lambda conn: conn.execute("SELECT 1").fetchone()).addBoth(done)

    def on_availability(self, listener: Callable[[bool], Any]) -> None:
        """``listener(False)`` when the database becomes unreachable, ``(True)`` when back."""
        self._listeners.append(listener)

    @property
    def pending(self) -> int:
        """Durable work waiting for the database to come back."""
        return len(self._pending)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._probe_call is not None and self._probe_call.active():
            self._probe_call.cancel()
        if self._pending:
            log.error("closing with {n} write(s) the database never took", n=len(self._pending))
        if self._threaded:
            self._threads.stop()
        self._pool.close()

    def url_for_log(self) -> str:
        """The URL without its password."""
        return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", self.url)

    # -- inside ---------------------------------------------------------------------------

    def _transaction(self, work: Callable[[PgConnection], Any]) -> Any:
        return self._pool.transaction(lambda conn: work(PgConnection(conn)))

    def _execute(self, work: Callable[[PgConnection], Any]) -> Deferred:
        if not self._threaded:
            try:
                return succeed(self._transaction(work))
            except Exception:
                return fail(Failure())
        from twisted.internet.threads import deferToThreadPool
        return deferToThreadPool(self._reactor, self._threads, self._transaction, work)

    def _attempt(self, work, result: Deferred, durable: bool) -> None:
        def failed(failure: Failure) -> None:
            if not failure.check(*OUTAGE) or self._closed:
                result.errback(failure)
                return
            self._went_down(failure)
            if durable:
                self._pending.append((work, result))
            else:
                result.errback(Failure(StoreUnavailable(str(failure.value).strip())))
        self._execute(work).addCallbacks(result.callback, failed)

    def _went_down(self, failure: Failure) -> None:
        if not self.available:
            return
        self.available = False
        log.error("database {u} unreachable ({e}); new calls get 503 until it is back, "
                  "CDRs are kept and written then", u=self.url_for_log(),
                  e=str(failure.value).strip().splitlines()[0] if str(failure.value) else
                  type(failure.value).__name__)
        self._tell(False)
        self._schedule_probe()

    def _schedule_probe(self) -> None:
        if self._threaded and not self._closed:
            self._probe_call = self._reactor.callLater(self.retry_interval, self.probe)

    def probe(self) -> Deferred:
        """Try the database once; when it answers, mark it available and write the queued
        work in order.  Fires with whether it is available."""
        if self._closed or self.available or self._probing:
            return succeed(self.available)
        self._probing = True

        def back(_) -> bool:
            self._probing = False
            self.available = True
            log.info("database {u} reachable again; writing {n} queued record(s)",
                     u=self.url_for_log(), n=len(self._pending))
            self._tell(True)
            queued, self._pending = list(self._pending), deque()
            for work, d in queued:
                self._attempt(work, d, True)
            return self.available

        def still_down(failure: Failure) -> bool:
            self._probing = False
            self._schedule_probe()
            return False
        return self._execute(lambda conn: conn.execute("SELECT 1").fetchone()).addCallbacks(
            back, still_down)

    def _tell(self, up: bool) -> None:
        for listener in list(self._listeners):
            try:
                listener(up)
            except Exception:
                log.failure("availability listener")

