"""One behaviour on SQLite and PostgreSQL: every test here runs on both backends
(``backend`` fixture; PostgreSQL is a throwaway cluster from tests/store/conftest.py)."""
from __future__ import annotations

import threading

import pytest

from ivr.store.cdr import FIELDS, CdrStore
from ivr.store.dnd import DndList
from ivr.store.migrations import MIGRATIONS, migrate, schema_version
from ivr.store.registrations import InvalidRegistration, RegistrationStore
from ivr.store.sessions import SessionStore

from .cdr_writer import cdr
from .test_cdr import result


def test_cdrs_record_query_and_merge(backend):
    store = CdrStore(backend.open())
    for i in range(6):
        rec = cdr(i, "x")
        rec["outcome"] = "answered" if i % 3 else "busy"
        assert result(store.record(rec)) == f"x-{i}"
    assert [r["leg_id"] for r in result(store.query())] == [f"x-{i}" for i in range(5, -1, -1)]
    r0 = result(store.get("x-0"))
    assert r0["duration"] == 30.0 and r0["billsec"] == 28.0 and r0["digits"] == ["1", "23"]
    assert r0["setup_at"] == 1000.0  # a double, not PostgreSQL's 4-byte REAL
    assert list(r0) == FIELDS
    assert [r["leg_id"] for r in result(store.query(outcome="busy"))] == ["x-3", "x-0"]
    assert [r["leg_id"] for r in result(store.query(since=1002, until=1004))] == ["x-3", "x-2"]
    assert [r["leg_id"] for r in result(store.query(number=["+12025550004", "x"]))] == ["x-4"]
    assert [r["leg_id"] for r in result(store.query(session_id="s-1", limit=1,
                                                    offset=1))] == ["x-2"]
    # the call core overwrites, click-to-call only fills gaps; unknown keys go to extra
    result(store.record({"leg_id": "x-0", "outcome": "failed", "role": None, "note": "%?"},
                        overwrite=False))
    merged = result(store.get("x-0"))
    assert merged["outcome"] == "busy" and merged["role"] == "agent"
    assert merged["extra"] == {"note": "%?"}
    result(store.record({"leg_id": "x-0", "outcome": "failed", "setup_at": 1000.123456}))
    assert result(store.get("x-0"))["outcome"] == "failed"
    assert result(store.get("x-0"))["setup_at"] == 1000.123456
    assert result(store.get("nope")) is None


def test_a_bad_statement_fails_its_deferred_and_the_store_goes_on(backend):
    db = backend.open()
    store = CdrStore(db)
    with pytest.raises(Exception):
        result(db.run(lambda conn: conn.execute("SELECT no_such_column FROM cdrs")))
    assert db.available
    assert result(store.record(cdr(1, "ok"))) == "ok-1"


def test_dnd_list_persists(backend):
    dnd = DndList(backend.open())
    assert result(dnd.add("+12025550143", "asked", 5.0)) is True
    assert result(dnd.add("+12025550143", "again", 6.0)) is False
    assert dnd.contains("+12025550143") and not dnd.contains("+12025550144")
    dnd2 = DndList(backend.open())
    assert dnd2.entries() == [{"number": "+12025550143", "reason": "again", "added_at": 5.0}]
    assert result(dnd2.remove("+12025550143")) is True
    assert result(dnd2.remove("+12025550143")) is False


def test_migrations_are_numbered_applied_once_and_recorded(backend):
    versions = [m.version for m in MIGRATIONS]
    assert versions == list(range(1, len(versions) + 1))
    db = backend.open()
    assert migrate(db) == versions
    assert migrate(db) == []                     # the same process: nothing to do
    again = backend.open()
    assert migrate(again) == []                  # a second node: nothing to do either
    assert schema_version(again) == versions[-1]
    rows = again.read_now(lambda c: c.execute(
        "SELECT version, name FROM schema_version ORDER BY version").fetchall())
    assert [r[0] for r in rows] == versions and all(r[1] for r in rows)


def test_nodes_starting_together_migrate_once(backend):
    """Four threads open the same fresh database at once: each migration is applied by
    exactly one of them (PostgreSQL: the advisory lock; SQLite: the write lock)."""
    backend.open()                                 # the (empty) database exists
    applied, errors = [], []
    start = threading.Barrier(4)

    def node():
        try:
            db = backend.open()  # SQLite's connection belongs to the thread that opens it
            start.wait()
            applied.append(migrate(db))
            backend.forget(db)
            db.close()
        except Exception as exc:  # pragma: no cover - shown by the assertion
            errors.append(exc)
    threads = [threading.Thread(target=node) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert sorted(v for a in applied for v in a) == [m.version for m in MIGRATIONS]


def test_an_older_cdr_table_gains_the_new_columns(backend):
    db = backend.open()
    result(db.run(lambda c: c.execute(
        "CREATE TABLE cdrs (leg_id TEXT PRIMARY KEY, outcome TEXT, extra TEXT)")))
    result(db.run(lambda c: c.execute("INSERT INTO cdrs (leg_id, outcome) VALUES (?, ?)",
                                      ("old", "answered"))))
    store = CdrStore(db)
    result(store.record({"leg_id": "new", "sip_status": 486, "sip_reason": "Busy Here"}))
    assert result(store.get("new"))["sip_status"] == 486
    assert result(store.get("old"))["outcome"] == "answered"


def reg(aor, key, expires_at, **more):
    return {"aor": aor, "contact_key": key, "contact": f"<sip:{aor}@192.0.2.1:{key}>",
            "transport": "UDP", "host": "192.0.2.1", "port": 5062, "expires_at": expires_at,
            "updated_at": more.pop("updated_at", 100.0), **more}


def test_registrations_are_shared_between_nodes(backend):
    a = RegistrationStore(backend.open(), node="a")
    b = RegistrationStore(backend.open(), node="b")
    assert result(a.save(reg("2001", "k1", 200.0, q=0.5))) == ("2001", "k1")
    result(a.save(reg("2001", "k2", 300.0, updated_at=150.0)))
    result(a.save(reg("2002", "k1", 120.0)))
    found = result(b.lookup("2001", now=110.0))         # another node sees a's phones
    assert [r["contact_key"] for r in found] == ["k2", "k1"]   # q 1.0 (none) before 0.5
    assert found[0]["node"] == "a" and found[0]["port"] == 5062
    assert found[0]["expires_at"] == 300.0
    result(b.save(reg("2001", "k1", 400.0, node="b", updated_at=160.0)))  # refreshed via b
    assert {r["node"] for r in result(a.lookup("2001", now=110.0))} == {"a", "b"}
    assert [r["aor"] for r in result(a.current(now=150.0))] == ["2001", "2001"]
    assert result(a.expire(now=150.0)) == 1             # 2002 expired at 120
    assert result(b.remove("2001", "k2")) is True
    assert result(b.remove("2001", "k2")) is False
    assert result(a.clear("2001")) == 1
    assert result(b.lookup("2001", now=0.0)) == []
    with pytest.raises(InvalidRegistration):
        a.save({"aor": "2001"})


def test_click_to_call_sessions_and_events_seen_from_any_node(backend):
    a = SessionStore(backend.open(), node="a")
    b = SessionStore(backend.open(), node="b")
    body = {"id": "c2c_1", "state": "calling-agent", "agent": "+12025550100"}
    assert result(a.save("c2c_1", "calling-agent", False, body, 10.0, 10.0)) == "c2c_1"
    assert result(a.add_event("c2c_1", 10.0, {"event": "agent.ringing"})) == 1
    assert result(a.add_event("c2c_1", 11.0, {"event": "agent.answered"})) == 2
    seen = result(b.get("c2c_1"))
    assert seen["node"] == "a" and seen["state"] == "calling-agent" and not seen["final"]
    assert seen["body"] == body
    assert [e["event"] for e in seen["events"]] == ["agent.ringing", "agent.answered"]
    assert result(b.get("c2c_nope")) is None
    # b asks a to cancel; a finds the request; once final, no more requests are taken
    assert result(b.request_cancel("c2c_1", 12.0)) == "a"
    assert result(a.cancel_requests()) == ["c2c_1"] and result(b.cancel_requests()) == []
    result(a.save("c2c_1", "cancelled", True, {**body, "state": "cancelled"}, 10.0, 13.0))
    assert result(a.cancel_requests()) == []
    assert result(b.request_cancel("c2c_1", 14.0)) is None
    assert result(b.request_cancel("c2c_nope", 14.0)) is None
    result(b.save("c2c_2", "calling-agent", False, body, 20.0, 20.0))
    assert [s["session_id"] for s in result(a.recent())] == ["c2c_2", "c2c_1"]
    assert result(a.purge(before=100.0)) == 1         # only the ended one
    assert result(b.get("c2c_1")) is None
    assert result(b.get("c2c_2"))["node"] == "b"
