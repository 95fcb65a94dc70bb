"""Store fixtures: a throwaway PostgreSQL cluster (from the Debian package, installed by
./scripts/setup) and ``backend``, which runs a test once on SQLite and once on PostgreSQL so
the two keep one behaviour.

Without PostgreSQL installed the PostgreSQL cases are skipped on a developer's machine and
fail under CI=true (CI must run them).
"""
from __future__ import annotations

import itertools
import os

import pytest

from .pg_cluster import PgCluster, pg_bin

_names = itertools.count(1)


def _need_postgres() -> None:
    if pg_bin() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed: ./scripts/setup installs it")
        pytest.skip("PostgreSQL is not installed (./scripts/setup installs it)")


@pytest.fixture(scope="session")
def pg_cluster():
    _need_postgres()
    cluster = PgCluster()
    yield cluster
    cluster.destroy()


def fresh_database(cluster: PgCluster) -> str:
    """A new empty database in ``cluster``; its URL."""
    import psycopg
    name = f"t{os.getpid()}_{next(_names)}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return cluster.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def pg_url(pg_cluster):
    return fresh_database(pg_cluster)


class Backend:
    """Opens databases of one kind, all on the same storage, and closes them at the end."""

    def __init__(self, kind: str, tmp_path, request) -> None:
        self.kind = kind
        self._tmp = tmp_path
        self._request = request
        self._url = None
        self._opened = []

    def open(self, **options):
        if self.kind == "sqlite":
            from ivr.store.db import Database
            db = Database(self._tmp / "ivr.sqlite3", threaded=False, **options)
        else:
            from ivr.store.pg import PgDatabase
            if self._url is None:
                self._url = fresh_database(self._request.getfixturevalue("pg_cluster"))
            db = PgDatabase(self._url, threaded=False, **options)
        self._opened.append(db)
        return db

    def forget(self, db) -> None:
        """``db`` is closed by the test (on its own thread)."""
        self._opened.remove(db)

    def close(self) -> None:
        for db in self._opened:
            db.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    b = Backend(request.param, tmp_path, request)
    yield b
    b.close()
