"""Phone numbers for the API: parse to E.164 and describe (``/v1/lookup``)."""
from __future__ import annotations

import re

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType, geocoder

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
        return phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise ApiError(400, "invalid_number", f"'{field}' is not a phone number: {exc}") from None


def to_e164(value, region: str, field: str = "number") -> str:
    """A dialable number -> E.164, or ApiError 400 (unparseable) / 422 (not valid)."""
    num = parse(value, region, field)
    if not phonenumbers.is_valid_number(num):
        raise ApiError(422, "invalid_number", f"'{field}' is not a valid number: {value!r}")
    return phonenumbers.format_number(num, PhoneNumberFormat.E164)


def agent_target(value, region: str) -> str:
    """An agent: an extension (``2001``), a SIP URI, or a number (-> E.164)."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "invalid_field", "'agent' must be a non-empty string")
    value = value.strip()
    if _EXTENSION.match(value) or _URI.match(value):
        return value
    return to_e164(value, region, "agent")


def describe(value: str, region: str) -> dict:
    num = parse(value, region)
    valid = phonenumbers.is_valid_number(num)
    kind = _TYPES.get(phonenumbers.number_type(num), "unknown")
    return {
        "input": value,
        "valid": valid,
        "possible": phonenumbers.is_possible_number(num),
        "e164": phonenumbers.format_number(num, PhoneNumberFormat.E164) if valid else None,
        "national": phonenumbers.format_number(num, PhoneNumberFormat.NATIONAL),
        "international": phonenumbers.format_number(num, PhoneNumberFormat.INTERNATIONAL),
        "country_code": num.country_code,
        "region": phonenumbers.region_code_for_number(num),
        "location": geocoder.description_for_number(num, "en") or None,
        "type": kind if valid else "unknown",
        "toll_free": valid and kind == "toll_free",
    }
