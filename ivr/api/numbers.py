"""Phone numbers in API requests: fields to E.164 and ``/v1/lookup``'s description.

The parsing and E.164 formatting are :mod:`ivr.sip.e164`'s; this module turns what it
says into the API's 400 / 422 answers.
"""
from __future__ import annotations

import re

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType, geocoder

from ivr.sip.e164 import (NotANumber, compact, national_digits, parse_dialled, parse_text,
                          to_e164)

from .errors import ApiError

_TYPES = {
    PhoneNumberType.FIXED_LINE: "fixed_line",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal_number",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
    PhoneNumberType.UNKNOWN: "unknown",
}
_EXTENSION = re.compile(r"[0-9*#]{1,8}\Z")
_URI = re.compile(r"sips?:[^\s]+\Z", re.I)


def parse(value, region: str, field: str = "number") -> phonenumbers.PhoneNumber:
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "invalid_field", f"'{field}' must be a non-empty string")
    if len(value) > 64:
        raise ApiError(400, "invalid_number", f"'{field}' is too long")
    try:
        return parse_text(value, region)
    except NotANumber as exc:
        raise ApiError(400, "invalid_number", f"'{field}' is not a phone number: {exc}") from None


def e164_field(value, region: str, field: str = "number") -> str:
    """A request field holding a dialable number -> E.164, or ApiError 400 (not a
    number) / 422 (not a valid one)."""
    e164 = to_e164(parse(value, region, field), region, valid_only=True)
    if e164 is None:
        raise ApiError(422, "invalid_number", f"'{field}' is not a valid number: {value!r}")
    return e164


def agent_target(value, region: str) -> str:
    """An agent: an extension (``2001``), a SIP URI, or a number (-> E.164)."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "invalid_field", "'agent' must be a non-empty string")
    value = value.strip()
    if _EXTENSION.match(value) or _URI.match(value):
        return value
    return e164_field(value, region, "agent")


def describe(value: str, region: str) -> dict:
    num = parse(value, region)
    valid = phonenumbers.is_valid_number(num)
    kind = _TYPES.get(phonenumbers.number_type(num), "unknown")
    return {
        "input": value,
        "valid": valid,
        "possible": phonenumbers.is_possible_number(num),
        "e164": to_e164(num, region, valid_only=True),
        "national": phonenumbers.format_number(num, PhoneNumberFormat.NATIONAL),
        "international": phonenumbers.format_number(num, PhoneNumberFormat.INTERNATIONAL),
        "country_code": num.country_code,
        "region": phonenumbers.region_code_for_number(num),
        "location": geocoder.description_for_number(num, "en") or None,
        "type": kind if valid else "unknown",
        "toll_free": valid and kind == "toll_free",
    }


_DIALLED = re.compile(r"\+?[0-9*#]+\Z")


def number_forms(value: str, region: str = "US") -> tuple[str, ...]:
    """Every form the dialled string ``value`` may be stored in, for the CDR filter
    (``GET /v1/cdrs?number=``, :meth:`ivr.store.cdr.CdrStore.query`).

    Rows keep numbers as the call had them: E.164 where the number parsed, else the user
    part as dialled (an extension ``2001``, a short code ``611`` or ``*97``, a SIP user
    ``alice``, a URI for an outbound SIP target).  So the filter matches the string itself
    and without visual separators, and for a phone number its E.164 form, E.164 without
    ``+``, and -- only for numbers of ``region``'s country, whose national digits would
    otherwise be another country's -- the national number with and without trunk prefix
    (``2025550143``; ``02079460000`` and ``2079460000`` in GB).
    """
    raw = value.strip()
    short = compact(raw)
    forms = dict.fromkeys((raw, short) if _DIALLED.match(short) else (raw,))
    num = parse_dialled(short, region)
    if num is not None:
        e164 = to_e164(num, region)
        forms.update(dict.fromkeys((e164, e164[1:])))
        if num.country_code == phonenumbers.country_code_for_region(region):
            national = phonenumbers.format_number(num, PhoneNumberFormat.NATIONAL)
            forms.update(dict.fromkeys((national_digits(num), re.sub(r"[^0-9]", "", national))))
    return tuple(f for f in forms if f)
