"""A PostgreSQL outage: stop the throwaway cluster under a PgDatabase, then start it again.

Logged once (not per write), the availability listeners told once each way, CDRs (durable
work) queued in order and written when it is back (none lost), other work refused at once
with StoreUnavailable, and the pool reconnects by itself (no new PgDatabase).
"""
from __future__ import annotations

import pytest
from twisted.logger import globalLogPublisher

from ivr.store.cdr import CdrStore
from ivr.store.db import StoreUnavailable
from ivr.store.pg import PgDatabase

from .cdr_writer import cdr
from .conftest import _need_postgres
from .pg_cluster import PgCluster
from .test_cdr import result


@pytest.fixture
def own_cluster():
    """A cluster of this test's own: stopping it must not disturb the shared one."""
    _need_postgres()
    cluster = PgCluster()
    yield cluster
    cluster.destroy()


@pytest.fixture
def store_log():
    events = []

    def observe(event):
        if event.get("log_namespace") == "ivr.store":
            events.append(event)
    globalLogPublisher.addObserver(observe)
    yield events
    globalLogPublisher.removeObserver(observe)


def test_outage_queues_cdrs_refuses_the_rest_and_recovers(own_cluster, store_log):
    db = PgDatabase(own_cluster.url, threaded=False, connect_timeout=0.5)
    store = CdrStore(db)
    changes = []
    db.on_availability(changes.append)
    assert result(store.record(cdr(0, "before"))) == "before-0"

    own_cluster.stop()
    written = []
    pending = [store.record(cdr(i, "during")).addCallback(written.append) for i in range(5)]
    assert not db.available and changes == [False]
    assert written == [] and db.pending == 5       # kept, not lost, not failed
    with pytest.raises(StoreUnavailable):
        result(store.query())                       # a read cannot wait: refused at once
    with pytest.raises(StoreUnavailable):
        result(db.run(lambda c: c.execute("SELECT 1")))
    assert result(db.probe()) is False              # still down: no second log line
    down = [e for e in store_log if "unreachable" in e.get("log_format", "")]
    assert len(down) == 1 and changes == [False]

    own_cluster.start()
    assert result(db.probe()) is True               # the same pool reconnects
    assert changes == [False, True] and db.available and db.pending == 0
    assert written == [f"during-{i}" for i in range(5)]   # in order, once written
    assert all(d.called for d in pending)
    rows = result(store.query(limit=50))
    assert sorted(r["leg_id"] for r in rows) == ["before-0"] + [f"during-{i}" for i in range(5)]
    assert len([e for e in store_log if "reachable again" in e.get("log_format", "")]) == 1
    db.close()


def test_a_restart_between_two_writes_is_no_outage(own_cluster):
    """The database restarts while the node is idle: its pooled connection is dead, and the
    next write goes through on a new one instead of reporting an outage."""
    db = PgDatabase(own_cluster.url, threaded=False, connect_timeout=0.5)
    store = CdrStore(db)
    result(store.record(cdr(1, "a")))
    own_cluster.stop("immediate")
    own_cluster.start()
    changes = []
    db.on_availability(changes.append)
    d = store.record(cdr(2, "a"))                   # tried again on a fresh connection
    assert result(d) == "a-2" and db.available and changes == []
    assert result(store.get("a-2"))["leg_id"] == "a-2"
    db.close()


def test_unreachable_at_start_is_an_error_not_a_hang(tmp_path):
    from ivr.store.backend import open_database
    from .pg_cluster import free_port
    with pytest.raises(StoreUnavailable):
        open_database(f"postgresql://ivr@127.0.0.1:{free_port()}/postgres", tmp_path,
                      threaded=False, connect_timeout=1.0)


def test_heartbeat_notices_an_outage_while_nothing_is_written(own_cluster):
    db = PgDatabase(own_cluster.url, threaded=False, connect_timeout=0.5)
    changes = []
    db.on_availability(changes.append)
    db.heartbeat()
    assert db.available and changes == []
    own_cluster.stop()
    db.heartbeat()
    assert not db.available and changes == [False]
    db.close()
