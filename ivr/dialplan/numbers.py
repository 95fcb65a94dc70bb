"""The dialplan's view of numbers: route keys, short codes, number classes and the
caller ID.  Pure functions over the parties parsed once in :mod:`ivr.sip.address`."""
from __future__ import annotations

import re

import phonenumbers
from phonenumbers import PhoneNumberType

from ivr.call.interface import CallerId
from ivr.sip.address import PartyNumber, parse_party
from ivr.sip.e164 import compact, to_e164

#: A short code or extension as an exact route: 611, 7001, *97, #1 (digits, * and #, at
#: least one digit, no '+').  Eight characters, like the API's extensions.
SHORT_CODE = re.compile(r"(?=[*#]*[0-9])[0-9*#]{1,8}\Z")
ANONYMOUS = {"anonymous", "restricted", "unknown", "unavailable", "withheld", "private"}

NUMBER_CLASSES = {
    "toll_free": PhoneNumberType.TOLL_FREE,
    "premium_rate": PhoneNumberType.PREMIUM_RATE,
    "shared_cost": PhoneNumberType.SHARED_COST,
    "mobile": PhoneNumberType.MOBILE,
    "fixed_line": PhoneNumberType.FIXED_LINE,
    "voip": PhoneNumberType.VOIP,
    "personal_number": PhoneNumberType.PERSONAL_NUMBER,
    "uan": PhoneNumberType.UAN,
}
ALL_CLASSES = tuple(NUMBER_CLASSES) + ("any",)


def short_code(user: str | None) -> str | None:
    """``user`` without visual separators if it is a short code / extension, else None."""
    if not user:
        return None
    code = compact(user)
    return code if SHORT_CODE.match(code) else None


def route_number(value: str | None, region: str) -> str | None:
    """The key of an exact ``number:`` route and of a dialled number looked up in them:
    E.164 for a number the region can dial (as :func:`to_e164`), else the short code itself
    (``611``, ``*97``), else None (not a number).  Both sides go through here, so a short
    string that the region's plan makes a possible number (``7001`` in GB) still meets."""
    return to_e164(value, region) or short_code(value)


def number_class_matches(num: phonenumbers.PhoneNumber | None, cls: str) -> bool:
    """Whether a parsed number (:attr:`PartyNumber.number`) is of class ``cls``."""
    if num is None:
        return False
    if cls == "any":
        return True
    wanted = NUMBER_CLASSES[cls]
    actual = phonenumbers.number_type(num)
    if actual == PhoneNumberType.FIXED_LINE_OR_MOBILE:
        return wanted in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE)
    return actual == wanted


def caller_id(from_value: str | PartyNumber | None,
              p_asserted_identity: str | PartyNumber | None = None,
              privacy: str | None = None, region: str = "US") -> CallerId:
    """The caller: P-Asserted-Identity (from a trusted trunk) over From; Privacy honoured.

    The headers come as received or already parsed (:class:`InviteParties`).  ``number``
    is E.164 where it parses, else the raw user part, None when withheld
    (``anonymous@anonymous.invalid``).  ``private`` is set for Privacy ``id``/``user``/
    ``header`` (RFC 3323/3325) or an anonymous From: the plan then sees an empty
    caller.number.  ``address`` is the parsed party the number came from.
    """
    party = parse_party(p_asserted_identity, region) or parse_party(from_value, region)
    privacy_values = {t.strip().lower() for t in (privacy or "").replace(",", ";").split(";")}
    private = bool(privacy_values & {"id", "user", "header"})
    user = party.user if party is not None else None
    name = party.display if party is not None else None
    number: str | None
    if user is None or user.lower() in ANONYMOUS:
        number, private = None, True
    else:
        number = party.e164 or user
    if name is not None and name.lower() in ANONYMOUS:
        name = None
    return CallerId(number=number, name=name, raw=party.raw if party is not None else "",
                    private=private, address=party)
