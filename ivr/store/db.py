"""One SQLite database in ``--data``, written from one dedicated thread.

SQLite connections belong to the thread that opened them, so every statement runs on a
single writer thread that owns the only connection.  Work is queued as callables; the
thread drains everything queued, runs it inside **one transaction** and commits once
(group commit), and only then fires the callers' Deferreds.  A Deferred that has fired
therefore means "on disk": with WAL and ``synchronous=FULL`` a committed row survives a
``kill -9`` of the process (and a power cut).

Commit delay: after the first item of a batch the writer sleeps ``commit_delay`` (5 ms)
before it drains the queue, so the items queued meanwhile share the transaction and its
``fsync``.  Without it a commit took less time than the gap between two calls' records
(B1: 300 calls/s), every batch held one item and each CDR paid a whole ``COMMIT`` with
``synchronous=FULL`` -- and every ``put`` woke the writer through its condition variable,
which the reactor thread paid for.  A record now reaches the disk up to 5 ms later; its
Deferred still fires only after the commit, and the batch's Deferreds are fired together,
in one hand-over to the reactor thread.

Tests (and tools) may use ``Database(path, threaded=False)``, which runs each call inline
on the calling thread and returns an already-fired Deferred.
"""
from __future__ import annotations

import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable

from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure

Work = Callable[[sqlite3.Connection], Any]

#: Seconds the writer waits after a batch's first item for more to share its commit.
COMMIT_DELAY = 0.005


class StoreClosed(Exception):
    """Work was submitted after :meth:`Database.close`."""


class StoreUnavailable(Exception):
    """The database server cannot be reached (PostgreSQL; a local SQLite file always can).

    The store logs an outage once when it starts and once when it ends; work refused
    meanwhile carries ``outage = True`` so callers in layers that may not import this
    module can tell it from a real failure and not log it again every round."""

    outage = True


def connect(path: str | Path, synchronous: str = "FULL") -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=True)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class Database:
    """Serialises all access to one SQLite file.

    ``call_from_thread`` hands results back to the reactor thread (default:
    ``reactor.callFromThread``); ``schema`` is a list of idempotent DDL statements.
    The same interface as :class:`ivr.store.pg.PgDatabase`, so the stores do not care
    which backend they were given.
    """

    dialect = "sqlite"
    available = True  # a local file: never "unreachable"
    pending = 0

    def __init__(self, path: str | Path, *, threaded: bool = True,
                 call_from_thread: Callable[..., Any] | None = None,
                 synchronous: str = "FULL", max_batch: int = 500,
                 commit_delay: float = COMMIT_DELAY) -> None:
        self.path = Path(path)
        self._commit_delay = commit_delay
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._synchronous = synchronous
        self._threaded = threaded
        self._max_batch = max_batch
        self._closed = False
        if not threaded:
            self._conn = connect(self.path, synchronous)
            return
        if call_from_thread is None:
            from twisted.internet import reactor
            call_from_thread = reactor.callFromThread  # type: ignore[attr-defined]
        self._call_from_thread = call_from_thread
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"sqlite:{self.path.name}",
                                        daemon=True)
        self._thread.start()

    # -- public -------------------------------------------------------------------

    def ensure_schema(self, statements: list[str]) -> None:
        """Run DDL synchronously (startup only: blocks until applied)."""
        self.run_locked(lambda conn: [conn.execute(s) for s in statements])

    def run_locked(self, work: Work) -> Any:
        """``work(conn)`` synchronously in one write transaction (startup: migrations; the
        write lock keeps a second process out meanwhile)."""
        if self._threaded:
            waiter = _Waiter()
            self._queue.put((work, waiter))
            return waiter.wait()
        return with_tx(self._conn, work)

    def heartbeat(self) -> None:
        """Nothing to check for a local file."""

    def on_availability(self, listener: Callable[[bool], Any]) -> None:
        """A local file never goes away: the listener is never called."""

    def run(self, work: Work, *, durable: bool = False) -> Deferred:
        """Run ``work(conn)`` in the writer's transaction; fires with its result after commit.
        (``durable`` matters to PostgreSQL only: a local file has no outages.)"""
        if self._closed:
            return fail(StoreClosed(str(self.path)))
        if not self._threaded:
            try:
                return succeed(with_tx(self._conn, work))
            except Exception:
                return fail(Failure())
        d: Deferred = Deferred()
        self._queue.put((work, d))
        return d

    def read_now(self, work: Work) -> Any:
        """Synchronous read on a private connection (startup: loading caches)."""
        conn = connect(self.path, self._synchronous)
        try:
            return work(conn)
        finally:
            conn.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._threaded:
            self._queue.put(None)
            self._thread.join(timeout=10)
        else:
            self._conn.close()

    # -- writer thread --------------------------------------------------------------

    def _run(self) -> None:
        conn = connect(self.path, self._synchronous)
        while True:
            item = self._queue.get()
            if item is None:
                break
            if self._commit_delay > 0:
                time.sleep(self._commit_delay)  # group commit: let the batch fill
            batch = [item]
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            self._run_batch(conn, batch)
        conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list) -> None:
        results: list[tuple[Deferred | None, Any, bool]] = []
        conn.execute("BEGIN IMMEDIATE")
        for work, d in batch:
            conn.execute("SAVEPOINT item")
            try:
                value = work(conn)
            except BaseException as exc:  # one bad item must not sink the batch
                conn.execute("ROLLBACK TO item")
                conn.execute("RELEASE item")
                results.append((d, exc, False))
                continue
            conn.execute("RELEASE item")
            results.append((d, value, True))
        try:
            conn.execute("COMMIT")
        except BaseException as exc:
            conn.execute("ROLLBACK")
            results = [(d, exc, False) for d, _, _ in results]
        fire = []
        for d, value, ok in results:
            if isinstance(d, _Waiter):
                d.finish(value, ok)
            elif d is not None:
                fire.append((d, value if ok else Failure(value), ok))
        if fire:  # one hand-over (one wake-up of the reactor) per batch
            self._call_from_thread(_fire, fire)


def _fire(results: list) -> None:
    """On the reactor thread: fire a committed batch's Deferreds in queue order."""
    for d, value, ok in results:
        if ok:
            d.callback(value)
        else:
            d.errback(value)


class _Waiter:
    """A blocking wait for one item (startup DDL), released after the commit."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value = None
        self._ok = True

    def finish(self, value, ok: bool) -> None:
        self._value, self._ok = value, ok
        self._done.set()

    def wait(self, timeout: float = 30.0):
        if not self._done.wait(timeout):
            raise TimeoutError("the SQLite writer thread did not answer")
        if not self._ok:
            raise self._value
        return self._value


def with_tx(conn: sqlite3.Connection, work: Work) -> Any:
    conn.execute("BEGIN IMMEDIATE")
    try:
        value = work(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return value
