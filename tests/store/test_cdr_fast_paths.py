"""normalise() writes ``extra`` exactly as ``json.dumps(..., sort_keys=True)`` did."""
from __future__ import annotations

import json

from ivr.store.cdr import FIELDS, normalise


def test_extra_is_sorted_json_as_before():
    extra = {"path": ["route called='x'", "step é"], "dtmf_by_mode": {"rfc4733": 2, "inband": 0},
             "b": None, "a": [1.5, True, {"z": 1, "y": [2]}]}
    row = normalise({"leg_id": "L1", **extra, "extra": {"zz": "kept"}})
    got = row[FIELDS.index("extra")]
    assert got == json.dumps({"zz": "kept", **extra}, sort_keys=True)
    assert json.loads(got) == {"zz": "kept", **extra}
    assert normalise({"leg_id": "L2"})[FIELDS.index("extra")] is None
