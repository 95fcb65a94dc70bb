"""The SQLite CDR store: schema, upsert merge, queries, CSV, DND, and kill -9 durability."""
from __future__ import annotations

import csv
import io
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ivr.store.cdr import FIELDS, CdrStore, InvalidCdr, to_csv
from ivr.store.db import Database
from ivr.store.dnd import DndList

from .cdr_writer import cdr

ROOT = Path(__file__).resolve().parents[2]


def result(d):
    out = []
    d.addBoth(out.append)
    assert out, "deferred did not fire"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


@pytest.fixture
def store(tmp_path):
    db = Database(tmp_path / "ivr.sqlite3", threaded=False)
    yield CdrStore(db)
    db.close()


def test_wal_mode_and_schema(store, tmp_path):
    conn = sqlite3.connect(tmp_path / "ivr.sqlite3")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cols = [r[1] for r in conn.execute("PRAGMA table_info(cdrs)")]
    assert cols == FIELDS


def test_record_and_query_filters(store):
    for i in range(6):
        rec = cdr(i, "x")
        rec["outcome"] = "answered" if i % 3 else "busy"
        assert result(store.record(rec)) == f"x-{i}"
    rows = result(store.query())
    assert [r["leg_id"] for r in rows] == [f"x-{i}" for i in range(5, -1, -1)]
    r0 = result(store.get("x-0"))
    assert r0["duration"] == 30.0 and r0["billsec"] == 28.0 and r0["digits"] == ["1", "23"]
    assert [r["leg_id"] for r in result(store.query(outcome="busy"))] == ["x-3", "x-0"]
    assert [r["leg_id"] for r in result(store.query(since=1002, until=1004))] == ["x-3", "x-2"]
    assert [r["leg_id"] for r in result(store.query(number="+12025550004"))] == ["x-4"]
    assert len(result(store.query(limit=2, offset=1))) == 2
    assert [r["leg_id"] for r in result(store.query(session_id="s-1"))] == ["x-3", "x-2"]


def test_upsert_merges_two_writers(store):
    # the click-to-call session fills gaps; the call core is authoritative
    result(store.record({"leg_id": "L", "session_id": "S", "role": "agent",
                         "end_at": 50.0, "setup_at": 10.0, "outcome": "answered"},
                        overwrite=False))
    result(store.record({"leg_id": "L", "setup_at": 10.5, "answer_at": 12.0, "end_at": 49.0,
                         "rtp_loss_pct": 0.5, "rtp_jitter_ms": 3.25, "outcome": "answered",
                         "route": "ext-2001"}))
    result(store.record({"leg_id": "L", "end_at": 99.0, "session_id": "other"},
                        overwrite=False))
    row = result(store.get("L"))
    assert (row["session_id"], row["role"], row["setup_at"], row["end_at"]) == ("S", "agent",
                                                                               10.5, 49.0)
    assert row["rtp_jitter_ms"] == 3.25 and row["route"] == "ext-2001"


def test_unknown_fields_go_to_extra_and_bad_records_are_refused(store):
    result(store.record({"leg_id": "E", "carrier_cause": 17, "extra": {"a": 1}}))
    assert result(store.get("E"))["extra"] == {"a": 1, "carrier_cause": 17}
    with pytest.raises(InvalidCdr):
        store.record({"outcome": "answered"})


def test_csv_export_round_trips(store):
    result(store.record(cdr(1, "c")))
    text = to_csv(result(store.query()))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["leg_id"] == "c-1" and rows[0]["digits"] == '["1", "23"]'
    assert list(rows[0]) == FIELDS


def test_threaded_writer_commits_before_firing(tmp_path):
    fired = threading.Event()
    results = []

    def call_from_thread(f, *a):
        # on the writer thread: the row must already be visible to another connection
        conn = sqlite3.connect(tmp_path / "t.sqlite3")
        results.append(conn.execute("SELECT count(*) FROM cdrs").fetchone()[0])
        conn.close()
        f(*a)
        fired.set()
    db = Database(tmp_path / "t.sqlite3", call_from_thread=call_from_thread)
    store = CdrStore(db)
    d = store.record(cdr(7, "t"))
    assert fired.wait(5)
    assert results == [1] and result(d) == "t-7"
    db.close()


def test_dnd_list_persists(tmp_path):
    db = Database(tmp_path / "d.sqlite3", threaded=False)
    dnd = DndList(db)
    assert result(dnd.add("+12025550143", "asked", 5.0)) is True
    assert result(dnd.add("+12025550143", "again", 6.0)) is False
    assert dnd.contains("+12025550143") and not dnd.contains("+12025550144")
    db.close()
    dnd2 = DndList(Database(tmp_path / "d.sqlite3", threaded=False))
    assert dnd2.entries() == [{"number": "+12025550143", "reason": "again", "added_at": 5.0}]
    assert result(dnd2.remove("+12025550143")) is True
    assert result(dnd2.remove("+12025550143")) is False


def test_kill_9_loses_no_committed_record(tmp_path):
    path = tmp_path / "crash.sqlite3"
    n = 200
    proc = subprocess.Popen([sys.executable, "-m", "tests.store.cdr_writer", str(path), str(n)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    committed = 0
    deadline = time.monotonic() + 30
    try:
        for line in proc.stdout:
            if line.startswith("COMMITTED"):
                committed = int(line.split()[1])
            if line.strip() == "BUSY":
                break
            assert time.monotonic() < deadline
        time.sleep(0.3)   # in the middle of further writes
        assert proc.poll() is None, proc.stderr.read()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert committed == n and proc.returncode == -signal.SIGKILL
    conn = sqlite3.connect(path)
    done = {r[0] for r in conn.execute("SELECT leg_id FROM cdrs WHERE leg_id LIKE 'done-%'")}
    later = conn.execute("SELECT count(*) FROM cdrs WHERE leg_id LIKE 'later-%'").fetchone()[0]
    assert done == {f"done-{i}" for i in range(n)}
    assert later > 0      # it really was killed mid-stream of writes
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_threaded_schema_is_committed_before_startup_reads(tmp_path):
    calls = []
    db = Database(tmp_path / "s.sqlite3", call_from_thread=lambda f, *a: (calls.append(1),
                                                                           f(*a)))
    dnd = DndList(db)           # reads the table right after creating it
    assert dnd.entries() == []
    db.close()
    db2 = Database(tmp_path / "s.sqlite3", threaded=False)
    db2.run(lambda c: c.execute("INSERT INTO dnd VALUES ('+12025550143', NULL, 1.0)"))
    assert DndList(db2).contains("+12025550143")


def test_a_database_from_an_older_version_gains_the_new_columns(tmp_path):
    import sqlite3
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE cdrs (leg_id TEXT PRIMARY KEY, outcome TEXT, extra TEXT)")
    conn.execute("INSERT INTO cdrs (leg_id, outcome) VALUES ('old', 'answered')")
    conn.commit()
    conn.close()
    db = Database(path, threaded=False)
    store = CdrStore(db)
    result(store.record({"leg_id": "new", "sip_status": 486, "sip_reason": "Busy Here"}))
    assert result(store.get("new"))["sip_status"] == 486
    assert result(store.get("old"))["outcome"] == "answered"
    db.close()
