"""first_entry's shortcut for values without a comma gives the scan's answer."""
from __future__ import annotations

import random

import pytest

from ivr.dialplan.numbers import caller_id
from ivr.sip.address import first_entry, user_part


def _first_entry_reference(value: str) -> str:
    quoted = angle = False
    for i, ch in enumerate(value):
        if ch == '"' and (i == 0 or value[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch == "<":
            angle = True
        elif not quoted and ch == ">":
            angle = False
        elif ch == "," and not quoted and not angle:
            return value[:i].strip()
    return value.strip()


@pytest.mark.parametrize("value", [
    "", "  ", "sip:a@b", ' "A, B" <sip:a@b>', "<sip:a,b@h>, <sip:c@h>", "sip:1@h;x=y, sip:2@h",
    '"unterminated <sip:a@b>', "\t<sip:a@b>\n", '"\\"" <sip:a@b>, x',
])
def test_first_entry_matches_the_scan(value):
    assert first_entry(value) == _first_entry_reference(value)


def test_first_entry_matches_the_scan_on_random_values():
    rng = random.Random(3261)
    for _ in range(5000):
        value = "".join(rng.choice(['"', "<", ">", ",", "\\", " ", "a", "\t"])
                        for _ in range(rng.randrange(10)))
        assert first_entry(value) == _first_entry_reference(value), repr(value)


def test_caller_from_a_plain_from_header():
    caller = caller_id('"Ann" <sip:%2B15551230000@example.com>;tag=1', region="US")
    assert (caller.number, caller.name, caller.private) == ("+15551230000", "Ann", False)
    assert user_part("sipp <sip:sipp@127.0.0.1:5061>;tag=9") == "sipp"
