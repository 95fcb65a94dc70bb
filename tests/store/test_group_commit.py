"""The SQLite writer's commit delay (#17 item 3): records queued within it share one
transaction and one hand-over to the reactor, and each Deferred still fires only after
its row is on disk."""
import sqlite3
import threading
import time

from ivr.store.db import Database


def _insert(n):
    return lambda conn: conn.execute("INSERT INTO t VALUES (?)", (n,)) and n


def test_items_queued_during_the_delay_share_one_commit(tmp_path):
    path = tmp_path / "g.sqlite3"
    handovers, seen = [], []
    done = threading.Event()

    def call_from_thread(f, *a):
        conn = sqlite3.connect(path)  # another connection: only committed rows show
        seen.append(conn.execute("SELECT count(*) FROM t").fetchone()[0])
        conn.close()
        handovers.append(1)
        f(*a)
        if seen[-1] == 3:
            done.set()

    db = Database(path, call_from_thread=call_from_thread, commit_delay=0.2)
    db.ensure_schema(["CREATE TABLE IF NOT EXISTS t (n INTEGER)"])
    got = []
    ds = [db.run(_insert(1))]
    time.sleep(0.02)  # the writer has taken item 1 and waits for company
    ds += [db.run(_insert(2)), db.run(_insert(3))]
    for d in ds:
        d.addCallback(got.append)
    assert done.wait(5)
    assert handovers == [1] and seen == [3]   # one commit, one hand-over, all on disk
    assert got == [1, 2, 3]                   # fired in queue order
    db.close()


def test_a_failing_item_fails_alone_within_a_delayed_batch(tmp_path):
    path = tmp_path / "f.sqlite3"
    done = threading.Event()
    db = Database(path, call_from_thread=lambda f, *a: (f(*a), done.set()), commit_delay=0.1)
    db.ensure_schema(["CREATE TABLE IF NOT EXISTS t (n INTEGER)"])
    out = []
    db.run(_insert(1)).addCallback(out.append)
    db.run(lambda conn: conn.execute("INSERT INTO nope VALUES (1)")).addErrback(
        lambda f: out.append(f.type.__name__))
    db.run(_insert(3)).addCallback(out.append)
    assert done.wait(5)
    assert out == [1, "OperationalError", 3]
    db.close()
    conn = sqlite3.connect(path)
    assert [r[0] for r in conn.execute("SELECT n FROM t ORDER BY n")] == [1, 3]
