"""The DND list across nodes (PostgreSQL): each node mirrors the list in memory, and
``reload`` (every housekeeping round) brings in the other nodes' changes without ever
undoing one of its own that is still being written."""
from __future__ import annotations

import pytest
from twisted.internet.defer import Deferred

from ivr.store.dnd import DndList

from .test_cdr import result


@pytest.fixture
def two_nodes(pg_url):
    from ivr.store.pg import PgDatabase
    dbs = [PgDatabase(pg_url, threaded=False) for _ in range(2)]
    yield [DndList(db) for db in dbs]
    for db in dbs:
        db.close()


def test_a_number_added_on_one_node_is_refused_on_the_other_after_a_reload(two_nodes):
    a, b = two_nodes
    assert result(a.add("+15550001", "asked", 10.0)) is True
    assert not b.contains("+15550001")
    assert result(b.reload()) is True
    assert b.contains("+15550001") and b.entries()[0]["reason"] == "asked"
    assert result(b.remove("+15550001")) is True
    assert result(a.reload()) is True and not a.contains("+15550001")


def test_a_reload_never_undoes_a_local_change_in_flight(two_nodes):
    a, _ = two_nodes
    held: list[Deferred] = []
    real_run = a.db.run

    def slow_run(work, **kw):          # the write is committed later (a busy pool)
        d = Deferred()
        held.append((work, d))
        return d
    a.db.run = slow_run
    a.add("+15550002", None, 1.0)
    a.db.run = real_run
    assert result(a.reload()) is False           # not applied: the add is not committed
    assert a.contains("+15550002")
    work, d = held[0]
    d.callback(real_run(work).result)            # committed now
    assert result(a.reload()) is True and a.contains("+15550002")
