"""The webhook outbox (ivr/store/outbox.py) on SQLite and PostgreSQL: written with the state
change it reports, claimed head-first per call, leased, taken over when a node dies."""
from __future__ import annotations

import threading

import pytest

from ivr.store.outbox import Outbox
from ivr.store.sessions import SessionStore

from .conftest import fresh_database
from .test_cdr import result


def _keys(items):
    return [(i.key, i.seq) for i in items]


def test_only_the_head_of_each_call_is_claimed_in_order(backend):
    box = Outbox(backend.open(), node="a", lease=30)
    for key, seq, at in (("c1", 1, 1.0), ("c2", 1, 2.0), ("c1", 2, 3.0), ("c1", 3, 4.0)):
        result(box.add(key, seq, "http://h/x", f"e{seq}", {"n": seq}, at))
    first = result(box.claim(10.0))
    assert _keys(first) == [("c1", 1), ("c2", 1)]
    assert first[0].payload == {"id": "c1:1", "call_id": "c1", "event": "e1", "sequence": 1,
                                "timestamp": 1.0, "data": {"n": 1}}
    assert result(box.claim(10.0)) == []                  # leased, and c1:2 waits for c1:1
    assert result(box.delivered(first[0], 11.0)) is True
    assert _keys(result(box.claim(11.0))) == [("c1", 2)]
    assert result(box.waiting()) == 3


def test_retry_waits_for_next_at_and_drop_unblocks_the_call(backend):
    box = Outbox(backend.open(), node="a")
    result(box.add("c1", 1, "http://h/x", "ringing", {}, 1.0))
    result(box.add("c1", 2, "http://h/x", "completed", {}, 1.0))
    [item] = result(box.claim(2.0))
    assert result(box.retry(item, 1, 5.0)) is True
    assert result(box.claim(4.9)) == []
    [again] = result(box.claim(5.0))
    assert (again.seq, again.attempts) == (1, 1)
    assert result(box.drop(again, 6)) is True
    assert _keys(result(box.claim(5.0))) == [("c1", 2)]


def test_writing_the_same_event_twice_keeps_one(backend):
    box = Outbox(backend.open(), node="a")
    result(box.add("c1", 1, "http://h/x", "ringing", {"v": 1}, 1.0))
    result(box.add("c1", 1, "http://h/x", "ringing", {"v": 2}, 1.0))
    [item] = result(box.claim(2.0))
    assert item.payload["data"] == {"v": 1} and result(box.waiting()) == 1


def test_a_dead_nodes_lease_runs_out_and_another_node_delivers(backend):
    a = Outbox(backend.open(), node="a", lease=30)
    b = Outbox(backend.open(), node="b", lease=30)
    result(a.add("c1", 1, "http://h/x", "answered", {}, 100.0))
    [taken] = result(a.claim(100.0))                      # a sends ... and dies
    assert result(b.claim(129.9)) == []
    [item] = result(b.claim(130.0))
    assert item.payload == taken.payload                  # same idempotency key
    assert result(b.delivered(item, 131.0)) is True
    assert result(a.delivered(taken, 132.0)) is False     # a's lease was lost
    assert result(a.waiting()) == 0


def test_a_session_event_and_its_webhook_commit_together(backend):
    db = backend.open()
    sessions, box = SessionStore(db, node="a"), Outbox(db, node="a")
    event = {"seq": 1, "event": "initiated", "state": "initiated", "at": 5.0}
    assert result(sessions.record("s1", "initiated", False, {"id": "s1"}, 5.0, event,
                                  "http://h/x", {"type": "click-to-call"})) == 1
    [item] = result(box.claim(6.0))
    assert item.payload["id"] == "s1:1" and item.payload["data"] == {"type": "click-to-call"}
    assert result(sessions.get("s1"))["events"] == [event]

    def broken(conn):   # the session write fails after the event: neither is kept
        conn.execute("INSERT INTO c2c_events (session_id, seq, at, event) "
                     "VALUES ('s2', 1, 1.0, '{}')")
        from ivr.store.outbox import enqueue
        enqueue(conn, "s2", 1, "http://h/x", "initiated", {}, 1.0)
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        result(db.run(broken))
    assert result(box.claim(7.0)) == [] and result(sessions.get("s2")) is None


def test_two_nodes_claiming_at_once_never_take_the_same_row(pg_cluster):
    from ivr.store.pg import PgDatabase
    url = fresh_database(pg_cluster)
    dbs = [PgDatabase(url, threaded=False) for _ in range(3)]
    try:
        writer = Outbox(dbs[0], node="w")
        for key in range(60):
            result(writer.add(f"c{key}", 1, "http://h/x", "ringing", {}, float(key)))
        boxes = [Outbox(db, node=f"n{i}") for i, db in enumerate(dbs[1:])]
        got: list[list] = [[], []]
        start = threading.Barrier(2)

        def claimer(i):
            start.wait()
            for _ in range(30):
                got[i].extend(_keys(result(boxes[i].claim(100.0, limit=3))))
        threads = [threading.Thread(target=claimer, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(got[0]) + len(got[1]) == 60
        assert not set(got[0]) & set(got[1])
    finally:
        for db in dbs:
            db.close()


def test_an_event_after_the_final_one_is_numbered_after_it_not_dropped(backend):
    """The sender's per-call counter is forgotten at the final event, so a later event of
    the same call comes again as seq 1: it is kept, numbered after the call's last row."""
    box = Outbox(backend.open(), node="a")
    result(box.add("c1", 1, "http://h/x", "ringing", {}, 1.0))
    result(box.add("c1", 2, "http://h/x", "completed", {}, 2.0))
    late = result(box.add("c1", 1, "http://h/x", "recording", {"url": "r"}, 3.0))
    assert (late["id"], late["sequence"]) == ("c1:3", 3)
    result(box.add("c1", 1, "http://h/x", "recording", {"url": "r"}, 3.0))  # repeated
    seen = []
    for _ in range(4):
        for item in result(box.claim(10.0)):
            seen.append((item.seq, item.payload["event"]))
            result(box.delivered(item, 10.0))
    assert seen == [(1, "ringing"), (2, "completed"), (3, "recording")]
