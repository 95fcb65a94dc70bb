"""Called and calling numbers: header values in, E.164 and CallerId out.  Pure functions."""
from __future__ import annotations

import re
from urllib.parse import unquote

import phonenumbers
from phonenumbers import PhoneNumberType

from ivr.call.interface import CallerId

_VISUAL = re.compile(r"[\s\-().]")
_DIALLABLE = re.compile(r"\+?[0-9]+\Z")
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


def user_part(value: str | None) -> str | None:
    """The user part of a header value, URI or bare user: ``"A" <sip:+1555@h>;x=y`` -> ``+1555``.

    For a comma-separated list (Diversion) the first (most recent) entry is used.
    """
    if value is None:
        return None
    v = first_entry(value)
    if not v:
        return None
    if "<" in v:
        inner = v[v.index("<") + 1:]
        v = inner[:inner.index(">")] if ">" in inner else inner
    v = v.split(";", 1)[0] if v.lower().startswith("tel:") else v
    lower = v.lower()
    for scheme in ("sips:", "sip:", "tel:"):
        if lower.startswith(scheme):
            v = v[len(scheme):]
            break
    if "@" in v:
        v = v.rsplit("@", 1)[0]
    elif ":" in v or "." in v and not _DIALLABLE.match(_VISUAL.sub("", v)):
        return None  # a bare host, no user part
    v = v.split(";", 1)[0]  # user parameters (;phone-context=...)
    v = _unescape(v)
    return v or None


def first_entry(value: str) -> str:
    """The first entry of a comma-separated header value (commas in quotes or <> kept)."""
    if "," not in value:
        return value.strip()  # what the scan below returns when no comma ends an entry
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


def _unescape(s: str) -> str:
    try:
        return unquote(s)
    except Exception:  # pragma: no cover - unquote does not raise on str
        return s


def parse_number(user: str | None, region: str) -> phonenumbers.PhoneNumber | None:
    """A phone number if ``user`` looks diallable and is a possible number, else None."""
    if not user:
        return None
    digits = _VISUAL.sub("", user)
    if not _DIALLABLE.match(digits):
        return None
    try:
        num = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:
        return None
    return num if phonenumbers.is_possible_number(num) else None


def to_e164(user: str | None, region: str) -> str | None:
    num = parse_number(user, region)
    return None if num is None else phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def short_code(user: str | None) -> str | None:
    """``user`` without visual separators if it is a short code / extension, else None."""
    if not user:
        return None
    compact = _VISUAL.sub("", user)
    return compact if SHORT_CODE.match(compact) else None


def route_number(value: str | None, region: str) -> str | None:
    """The key of an exact ``number:`` route and of a dialled number looked up in them:
    E.164 for a number the region can dial (as :func:`to_e164`), else the short code itself
    (``611``, ``*97``), else None (not a number).  Both sides go through here, so a short
    string that the region's plan makes a possible number (``7001`` in GB) still meets."""
    return to_e164(value, region) or short_code(value)


def national_digits(user: str | None, region: str) -> str | None:
    num = parse_number(user, region)
    return None if num is None else phonenumbers.national_significant_number(num)


def number_class_matches(user: str | None, region: str, cls: str) -> bool:
    num = parse_number(user, region)
    if num is None:
        return False
    if cls == "any":
        return True
    wanted = NUMBER_CLASSES[cls]
    actual = phonenumbers.number_type(num)
    if actual == PhoneNumberType.FIXED_LINE_OR_MOBILE:
        return wanted in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE)
    return actual == wanted


def _display_name(value: str) -> str | None:
    v = value.strip()
    if "<" not in v:
        return None
    name = v[:v.index("<")].strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return name or None


def caller_id(from_value: str, p_asserted_identity: str | None = None,
              privacy: str | None = None, region: str = "US") -> CallerId:
    """The caller: P-Asserted-Identity (from a trusted trunk) over From; Privacy honoured.

    ``number`` is E.164 where it parses, else the raw user part, None when withheld
    (``anonymous@anonymous.invalid``).  ``private`` is set for Privacy ``id``/``user``/``header``
    (RFC 3323/3325) or an anonymous From: the plan then sees an empty caller.number.
    """
    source = p_asserted_identity if p_asserted_identity and p_asserted_identity.strip() else from_value
    raw = first_entry(source or "")
    user = user_part(raw)
    name = _display_name(raw)
    privacy_values = {t.strip().lower() for t in (privacy or "").replace(",", ";").split(";")}
    private = bool(privacy_values & {"id", "user", "header"})
    number: str | None
    if user is None or user.lower() in ANONYMOUS:
        number, private = None, True
    else:
        number = to_e164(user, region) or user
    if name is not None and name.lower() in ANONYMOUS:
        name = None
    return CallerId(number=number, name=name, raw=raw, private=private)
