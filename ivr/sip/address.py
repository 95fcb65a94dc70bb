"""The parties of a call as SIP names them, parsed once.  Pure.

A From, To, P-Asserted-Identity, Diversion or P-Called-Party-ID value (name-addr or
addr-spec), a Request-URI or a bare user part becomes one :class:`PartyNumber`: the
unescaped user part, the display name, the host, whether it is a phone number and its
E.164 form.  The router, the caller ID, the CDRs and the API all read this one value
instead of cutting header strings again.

The strict grammar (:func:`ivr.sip.uri.parse_name_addr`) is tried first; a value it
refuses (headers the transaction layer does not check, such as Diversion, or a bare
``8005550100``) is read leniently, so a sloppy trunk still routes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

from phonenumbers import PhoneNumber

from .e164 import compact, is_diallable, parse_dialled, to_e164
from .uri import AbsoluteUri, SipUri, param, parse_name_addr


@dataclass(frozen=True)
class PartyNumber:
    """One party's address.  ``user`` is unescaped (``%2B1555`` -> ``+1555``)."""

    raw: str                    # the (first) entry as received
    user: str | None = None     # None: no user part (``<sip:example.com>``)
    display: str | None = None  # unquoted display name
    host: str | None = None     # None for ``tel:`` and a bare user part
    scheme: str | None = None   # sip, sips, tel, ...; None for a bare user part
    phone: bool = False         # tel:, user=phone, or a user part of digits
    e164: str | None = None     # when the user part is a possible number
    #: the parsed number the E.164 form came from (number class, national digits)
    number: PhoneNumber | None = field(default=None, compare=False, repr=False)

    @property
    def called(self) -> str | None:
        """What a call to this party is recorded as: E.164, else the user part."""
        return self.e164 or self.user


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


def parse_party(value: str | PartyNumber | None, region: str = "US") -> PartyNumber | None:
    """A header value, URI or bare user part as a :class:`PartyNumber` (None when empty).

    For a comma-separated list (Diversion, P-Asserted-Identity) the first entry is used.
    ``region`` is the plan whose national numbers the user part may be written in.
    Never raises on the peer's text.
    """
    if value is None or isinstance(value, PartyNumber):
        return value
    raw = first_entry(value)
    if not raw:
        return None
    parts = _strict(raw)
    if parts is None:
        parts = _lenient(raw)
    display, scheme, user, host, user_phone, context = parts
    if user == "":
        user = None
    num = _number(user, context, region) if user is not None else None
    return PartyNumber(raw=raw, user=user, display=display or None, host=host, scheme=scheme,
                       phone=user_phone or is_diallable(user), e164=to_e164(num, region),
                       number=num)


def user_part(value: str | None) -> str | None:
    """The unescaped user part of a header value, URI or bare user, or None."""
    party = parse_party(value)
    return None if party is None else party.user


@dataclass(frozen=True)
class InviteParties:
    """Everything an INVITE says about who calls whom, each header parsed once."""

    request_uri: PartyNumber | None
    to: PartyNumber | None = None
    p_called_party_id: PartyNumber | None = None
    diversion: PartyNumber | None = None
    from_: PartyNumber | None = None
    p_asserted_identity: PartyNumber | None = None
    privacy: str | None = None

    @classmethod
    def parse(cls, request_uri: str, headers, region: str = "US") -> "InviteParties":
        """``headers`` is anything with ``get(name)`` (:class:`ivr.sip.headers.Headers`)."""
        def header(name: str) -> PartyNumber | None:
            value = headers.get(name)
            return parse_party(value, region) if value and value.strip() else None
        return cls(parse_party(request_uri, region), header("To"), header("P-Called-Party-ID"),
                   header("Diversion"), header("From"), header("P-Asserted-Identity"),
                   headers.get("Privacy"))

    def called_candidates(self) -> tuple[tuple[str, PartyNumber | None], ...]:
        """Where the dialled number may be, in the order a router tries them: the
        Request-URI, P-Called-Party-ID (RFC 3455), To, Diversion (RFC 5806)."""
        return (("request_uri", self.request_uri), ("p_called_party_id", self.p_called_party_id),
                ("to", self.to), ("diversion", self.diversion))


# -- reading one entry ------------------------------------------------------------------

_Parts = tuple  # (display, scheme, user, host, user=phone or tel:, phone-context)


def _number(user: str, context: str | None, region: str) -> PhoneNumber | None:
    """A local number with a global ``phone-context`` (RFC 3966 5.1.5) is read under it:
    ``5550100;phone-context=+1-212`` is ``+12125550100``."""
    if context and context.startswith("+") and not user.startswith("+") and is_diallable(user):
        num = parse_dialled("+" + compact(context)[1:] + compact(user), region)
        if num is not None:
            return num
    return parse_dialled(user, region)


def _telephone_subscriber(text: str) -> tuple[str, str | None]:
    """``+1-212-555-0100;phone-context=x`` -> (unescaped number, the context or None)."""
    number, _, rest = text.partition(";")
    context = None
    for item in rest.split(";") if rest else ():
        name, _, value = item.partition("=")
        if name.strip().lower() == "phone-context":
            context = unquote(value.strip())
    return unquote(number), context


def _strict(raw: str) -> _Parts | None:
    try:
        addr = parse_name_addr(raw)
    except ValueError:  # SipSyntaxError, or anything else the grammar refuses
        return None
    uri = addr.uri
    if addr.wildcard:
        return None
    if isinstance(uri, SipUri):
        user, context = (None, None) if uri.user is None else _telephone_subscriber(uri.user)
        # In an addr-spec (no <>) a ;user=phone is read as a header parameter.
        phone = (uri.param("user") or param(addr.params, "user") or "").lower() == "phone"
        return addr.display, uri.scheme, user, uri.host, phone, context
    if isinstance(uri, AbsoluteUri) and uri.scheme == "tel":
        user, context = _telephone_subscriber(uri.rest)
        if context is None:  # an addr-spec's ;phone-context= reads as a header parameter
            context = param(addr.params, "phone-context")
        return addr.display, "tel", user, None, True, context
    return addr.display, uri.scheme, None, None, False, None


def _lenient(raw: str) -> _Parts:
    """What a value the grammar refuses still says: cut at ``<>``, the scheme and ``@``."""
    v = raw
    display = None
    if "<" in v:
        display = _display_name(v)
        inner = v[v.index("<") + 1:]
        v = inner[:inner.index(">")] if ">" in inner else inner
    scheme = None
    lower = v.lower()
    for prefix in ("sips:", "sip:", "tel:"):
        if lower.startswith(prefix):
            scheme, v = prefix[:-1], v[len(prefix):]
            break
    host = None
    if scheme == "tel":
        user, context = _telephone_subscriber(v)
        return display, scheme, user, None, True, context
    if "@" in v:
        v, _, host = v.rpartition("@")
        host = host.split(";", 1)[0].split(">", 1)[0] or None
    elif ":" in v or "." in v and not is_diallable(v):
        return display, scheme, None, v.split(";", 1)[0] or None, False, None  # a bare host
    user, context = _telephone_subscriber(v)
    return display, scheme, user, host, False, context


def _display_name(value: str) -> str | None:
    name = value[:value.index("<")].strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return name or None
