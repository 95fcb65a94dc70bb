"""Phone numbers in E.164: the one place a number is parsed and formatted.  Pure.

Two kinds of text come in.  A *dialled* user part (a Request-URI or header user, a route
in a dialplan) is a number only when it is digits with an optional leading ``+`` once the
visual separators ``space - ( ) .`` are gone, and it must be a *possible* number of the
region's plan; anything else (``echo``, ``*97``) is not a number.  Text typed by a person
(an API field) goes through :func:`parse_text`, which also takes letters (``1-800-FLOWERS``)
and says why it is not a number.  Either way :func:`to_e164` gives the E.164 form.
"""
from __future__ import annotations

import re

import phonenumbers
from phonenumbers import PhoneNumber, PhoneNumberFormat

_VISUAL = re.compile(r"[\s\-().]")
_DIALLABLE = re.compile(r"\+?[0-9]+\Z")


class NotANumber(ValueError):
    """The text is not a phone number at all (the message says why)."""


def compact(text: str) -> str:
    """``text`` without visual separators: ``1-800 (555).0100`` -> ``18005550100``."""
    return _VISUAL.sub("", text)


def is_diallable(text: str | None) -> bool:
    """Digits with an optional leading ``+``, visual separators aside."""
    return bool(text) and _DIALLABLE.match(compact(text)) is not None


def parse_dialled(user: str | None, region: str) -> PhoneNumber | None:
    """A dialled user part as a phone number, or None when it is not a possible number."""
    if not is_diallable(user):
        return None
    try:
        num = phonenumbers.parse(compact(user), region)
    except phonenumbers.NumberParseException:
        return None
    return num if phonenumbers.is_possible_number(num) else None


def parse_text(text: str, region: str) -> PhoneNumber:
    """Text a person typed as a phone number; :class:`NotANumber` when it is none."""
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise NotANumber(str(exc)) from None


def to_e164(number: str | PhoneNumber | None, region: str, *,
            valid_only: bool = False) -> str | None:
    """``number`` (a dialled user part, or a number already parsed) in E.164.

    None when it is not a possible number of ``region``'s plan or, with ``valid_only``,
    not a valid (assigned-range) one.
    """
    num = number if isinstance(number, PhoneNumber) else parse_dialled(number, region)
    if num is None:
        return None
    ok = phonenumbers.is_valid_number if valid_only else phonenumbers.is_possible_number
    if not ok(num):
        return None
    return phonenumbers.format_number(num, PhoneNumberFormat.E164)


def national_digits(num: PhoneNumber | None) -> str | None:
    """The national significant number (``2125551234`` for ``+12125551234``)."""
    return None if num is None else phonenumbers.national_significant_number(num)
