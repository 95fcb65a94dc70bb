"""The CDR's ``speech`` column (#19): what speech input heard, as a JSON list, stored and
read back in its own column (not in ``extra``); empty for a leg that heard nothing."""
from __future__ import annotations

from ivr.store.cdr import CdrStore, to_csv
from ivr.store.db import Database

HEARD = [{"text": "sales", "heard": "sales", "confidence": 0.62, "start": 0.5, "end": 1.1,
          "latency_ms": 31.5, "accepted": True, "verb": "menu"}]


def fired(d):
    out = []
    d.addBoth(out.append)
    return out[0]


def test_what_was_heard_is_stored_and_read_back(tmp_path):
    db = Database(tmp_path / "ivr.sqlite3", threaded=False)
    store = CdrStore(db)
    fired(store.record({"leg_id": "a", "speech": HEARD}))
    fired(store.record({"leg_id": "b", "speech": []}))
    fired(store.record({"leg_id": "c"}))
    row = fired(store.get("a"))
    assert row["speech"] == HEARD and row["extra"] == {}
    assert fired(store.get("b"))["speech"] == []
    assert fired(store.get("c"))["speech"] == []
    assert "speech" in to_csv([row]).splitlines()[0]
    db.close()


def test_the_call_summary_carries_the_leg_s_speech():
    from ivr.call.records import call_summary
    from tests.call.test_records import leg
    call = leg()
    call.speech_heard = list(HEARD)
    assert call_summary(call)["speech"] == HEARD
