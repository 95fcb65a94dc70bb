"""ivr/sip/e164.py: the one E.164 module the dialplan and the API share."""
from __future__ import annotations

import pytest

from ivr.sip.e164 import (NotANumber, is_diallable, national_digits, parse_dialled, parse_text,
                          to_e164)


def test_dialled_user_parts():
    assert to_e164("8005550100", "US") == "+18005550100"
    assert to_e164("(800) 555.0100", "US") == "+18005550100"
    assert to_e164("echo", "US") is None and to_e164("*97", "US") is None
    assert to_e164(None, "US") is None and to_e164("", "US") is None
    assert to_e164("1-800-FLOWERS", "US") is None   # letters are not dialled digits


def test_typed_text_and_validity():
    assert to_e164(parse_text("1-800-FLOWERS", "US"), "US") == "+18003569377"
    with pytest.raises(NotANumber):
        parse_text("hello", "US")
    short = parse_text("+1 202 555", "US")
    assert to_e164(short, "US") is None
    # possible but not valid (no such area code): the dialplan takes it, the API does not
    assert to_e164("+11115550100", "US") == "+11115550100"
    assert to_e164("+11115550100", "US", valid_only=True) is None
    assert to_e164("+12025550143", "US", valid_only=True) == "+12025550143"


def test_national_digits_and_diallable():
    assert national_digits(parse_dialled("+12125551234", "US")) == "2125551234"
    assert national_digits(None) is None
    assert is_diallable("+1 (212) 555-1234") and not is_diallable("+") and not is_diallable("12a")
