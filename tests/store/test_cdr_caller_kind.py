"""The CDR's ``caller_kind`` and ``source_address`` columns (issue #16: anonymous browser
callers appear as ``webrtc`` legs with their source address): stored and read back, and
a database made before them gains them at start with its old rows kept."""
from __future__ import annotations

import sqlite3

from ivr.store.cdr import CdrStore
from ivr.store.db import Database


def fired(d):
    out = []
    d.addBoth(out.append)
    return out[0]


def test_a_browser_leg_is_stored_with_its_kind_and_source(tmp_path):
    db = Database(tmp_path / "ivr.sqlite3", threaded=False)
    store = CdrStore(db)
    fired(store.record({"leg_id": "a", "caller_kind": "webrtc",
                        "source_address": "198.51.100.7:40001", "sip_transport": "wss"}))
    row = fired(store.get("a"))
    assert (row["caller_kind"], row["source_address"]) == ("webrtc", "198.51.100.7:40001")
    assert row["extra"] == {}  # columns of their own, not extras
    db.close()


def test_an_older_database_gains_the_columns_at_start(tmp_path):
    path = tmp_path / "ivr.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE cdrs (leg_id TEXT PRIMARY KEY, direction TEXT, "
                 "sip_transport TEXT, extra TEXT)")
    conn.execute("INSERT INTO cdrs (leg_id, direction) VALUES ('old', 'inbound')")
    conn.commit()
    conn.close()
    db = Database(path, threaded=False)
    store = CdrStore(db)
    fired(store.record({"leg_id": "new", "caller_kind": "webrtc",
                        "source_address": "[2001:db8::7]:5555"}))
    rows = {r["leg_id"]: r for r in fired(store.query())}
    assert rows["old"]["direction"] == "inbound" and rows["old"]["caller_kind"] is None
    assert rows["new"]["source_address"] == "[2001:db8::7]:5555"
    db.close()
