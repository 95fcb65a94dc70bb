"""The CDR ``number`` filter: any dialled string, and the stored forms of the same number."""
from __future__ import annotations

import pytest

from ivr.store.db import Database

from .test_cdr import result

ROWS = [
    {"leg_id": "e164", "from_number": "+12025550143", "to_number": "+18005550100"},
    {"leg_id": "national", "from_number": "2025550177", "to_number": "+18005550101"},
    {"leg_id": "extension", "from_number": "2001", "to_number": "611"},
    {"leg_id": "feature", "from_number": "2002", "to_number": "*97"},
    {"leg_id": "sip-user", "from_number": "alice", "to_number": "sip:bob@pbx.example"},
    {"leg_id": "london", "from_number": "+442079460000", "to_number": "2001"},
    {"leg_id": "maine", "from_number": "+12079460000", "to_number": "2002"},
]


@pytest.fixture
def store(tmp_path):
    from ivr.store.cdr import CdrStore
    db = Database(tmp_path / "ivr.sqlite3", threaded=False)
    s = CdrStore(db)
    for i, row in enumerate(ROWS):
        result(s.record({**row, "setup_at": 100.0 - i}))
    yield s
    db.close()


def legs(store, value, region="US"):
    from ivr.api.numbers import number_forms
    return [r["leg_id"] for r in result(store.query(number=number_forms(value, region)))]


@pytest.mark.parametrize("value,expected", [
    ("+12025550143", ["e164"]),
    ("2025550143", ["e164"]),                  # national form of a stored E.164
    ("(202) 555-0143", ["e164"]),
    ("1 202 555 0143", ["e164"]),
    ("+1 800 555 0100", ["e164"]),
    ("+12025550177", ["national"]),            # E.164 of a stored national form
    ("2001", ["extension", "london"]),        # an extension, either side
    ("611", ["extension"]),                    # a short code
    ("*97", ["feature"]),
    ("alice", ["sip-user"]),                   # a SIP user
    ("sip:bob@pbx.example", ["sip-user"]),
    ("+442079460000", ["london"]),
    ("2079460000", ["maine"]),                 # national: the home country's, not London's
    ("nobody", []),
])
def test_number_filter_matches_any_dialled_form(store, value, expected):
    assert legs(store, value) == expected


def test_national_forms_of_another_region():
    from ivr.api.numbers import number_forms
    forms = number_forms("020 7946 0000", "GB")
    assert "+442079460000" in forms and "02079460000" in forms and "2079460000" in forms
    # A foreign number's national digits are not ours to match (they are a US number here).
    assert "2079460000" not in number_forms("+442079460000", "US")


def test_a_plain_string_still_filters(store):
    assert [r["leg_id"] for r in result(store.query(number="2001"))] == ["extension", "london"]
