"""The CDR's encryption columns (issue #15): ``sip_transport`` and ``media_encryption``
(and the SRTP drop counters) are stored, and a database made before them gains them at
start with its old rows kept."""
from __future__ import annotations

import sqlite3

from ivr.store.cdr import CdrStore
from ivr.store.db import Database


def fired(d):
    out = []
    d.addBoth(out.append)
    return out[0]


def test_an_encrypted_leg_is_stored_and_read_back(tmp_path):
    db = Database(tmp_path / "ivr.sqlite3", threaded=False)
    store = CdrStore(db)
    fired(store.record({"leg_id": "a", "sip_transport": "tls",
                        "media_encryption": "srtp:AES_CM_128_HMAC_SHA1_80",
                        "srtp_auth_failures": 2, "srtp_replays": 1}))
    fired(store.record({"leg_id": "b", "sip_transport": "udp", "media_encryption": "none"}))
    rows = {r["leg_id"]: r for r in fired(store.query())}
    assert rows["a"]["sip_transport"] == "tls"
    assert rows["a"]["media_encryption"] == "srtp:AES_CM_128_HMAC_SHA1_80"
    assert (rows["a"]["srtp_auth_failures"], rows["a"]["srtp_replays"]) == (2, 1)
    assert rows["a"]["extra"] == {}  # columns of their own, not extras
    assert rows["b"]["media_encryption"] == "none" and rows["b"]["srtp_replays"] is None
    db.close()


def test_an_older_database_gains_the_columns_at_start(tmp_path):
    path = tmp_path / "ivr.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE cdrs (leg_id TEXT PRIMARY KEY, direction TEXT, extra TEXT)")
    conn.execute("INSERT INTO cdrs (leg_id, direction) VALUES ('old', 'inbound')")
    conn.commit()
    conn.close()
    db = Database(path, threaded=False)
    store = CdrStore(db)
    fired(store.record({"leg_id": "new", "sip_transport": "tls", "media_encryption": "none"}))
    rows = {r["leg_id"]: r for r in fired(store.query())}
    assert rows["old"]["direction"] == "inbound" and rows["old"]["sip_transport"] is None
    assert rows["new"]["sip_transport"] == "tls"
    db.close()
