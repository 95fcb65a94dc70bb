"""GET /v1/cdrs?number=: any dialled string (issue #13), bad ones answered with 400."""
from __future__ import annotations

from urllib.parse import quote

import pytest

from .harness import Env


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    for i, (a, b) in enumerate([("+12025550143", "+18005550100"), ("2001", "611"),
                                ("alice", "*97"), ("+442079460000", "7001")]):
        e.store.record({"leg_id": f"L{i}", "from_number": a, "to_number": b,
                        "setup_at": 100.0 - i, "outcome": "answered"})
    return e


@pytest.mark.parametrize("number,expected", [
    ("2001", ["L1"]), ("611", ["L1"]), ("7001", ["L3"]), ("*97", ["L2"]), ("alice", ["L2"]),
    ("+12025550143", ["L0"]), ("(202) 555-0143", ["L0"]), ("12025550143", ["L0"]),
    ("+44 20 7946 0000", ["L3"]), ("xyz", []),
])
def test_number_filter_takes_any_dialled_string(env, number, expected):
    r = env.request("GET", "/v1/cdrs?number=" + quote(number, safe=""))
    assert r.code == 200, r.body
    assert [row["leg_id"] for row in r.json["cdrs"]] == expected


@pytest.mark.parametrize("number", ["9" * 129, "20%0001", "a%7Fb"])
def test_number_filter_refuses_overlong_and_control_characters(env, number):
    r = env.request("GET", "/v1/cdrs?number=" + number)
    assert r.code == 400 and r.error_code() == "invalid_field"
