"""What a UAS checks before acting on a request, and a UAC before accepting a response.

Pure (STYLE rule 1): a parsed :class:`Request` in, a :class:`Rejection` (the response
to send) or ``None`` out.  The checks follow RFC 3261 8.2 in its order -- the request
must be well formed (400) before the method is looked at (8.2.1: 501/405), then the
Request-URI scheme (8.2.2.1: 416), Require (8.2.2.3: 420), the body (8.2.3: 415) and
what the client accepts (406) -- with the RFC 4475 torture cases as the floor.

An ACK is never answered (RFC 3261 17.1.1.3 / 8.2): the caller drops an ACK for
which a Rejection is returned.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .headers import split_list
from .message import Request, Response, make_response
from .uri import (
    MAX_UINT32,
    AbsoluteUri,
    SipSyntaxError,
    SipUri,
    is_digits,
    is_token,
    parse_cseq,
    parse_name_addr,
    parse_uri,
    parse_via,
)

DEFAULT_METHODS = frozenset({
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO", "UPDATE", "REFER",
    "NOTIFY", "PRACK", "MESSAGE",
})
DEFAULT_CONTENT_TYPES = frozenset({
    "application/sdp", "application/dtmf-relay", "application/dtmf", "message/sipfrag",
    "text/plain",
})
DEFAULT_SCHEMES = frozenset({"sip", "sips", "tel"})
#: The option tags the UA core implements, which it passes as ``extensions``: a Require
#: naming only these gets no 420 (RFC 3261 8.2.2.3): reliable provisional responses
#: (RFC 3262) and session timers (RFC 4028).
EXTENSIONS = frozenset({"100rel", "timer"})

#: Headers a UAS relies on that must appear exactly once (RFC 3261 8.1.1, 20).
_SINGULAR = ("Call-ID", "From", "To", "CSeq", "Max-Forwards")
_MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")

_MEDIA_TYPE_RE = re.compile(
    r"([A-Za-z0-9.\-!%*_+`'~]+)[ \t]*/[ \t]*([A-Za-z0-9.\-!%*_+`'~]+)[ \t]*(;.*)?", re.S)
_CALL_ID_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+(?:@[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+)?")
_QVALUE_RE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


@dataclass(frozen=True)
class Rejection:
    """The response a UAS owes a request it will not process: status, reason phrase
    and extra headers (Allow, Unsupported, Accept, ...)."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


class _Reject(Exception):
    def __init__(self, rejection: Rejection) -> None:
        self.rejection = rejection


def _bad(header: str, detail: str = "") -> _Reject:
    suffix = f" ({detail})" if detail else ""
    return _Reject(Rejection(400, f"Malformed {header} header{suffix}"[:120]))


def check_request(request: Request, *, methods: frozenset[str] = DEFAULT_METHODS,
                  extensions: frozenset[str] = frozenset(),
                  content_types: frozenset[str] = DEFAULT_CONTENT_TYPES,
                  schemes: frozenset[str] = DEFAULT_SCHEMES) -> Rejection | None:
    """The Rejection owed to ``request``, or ``None`` when a UAS may process it.

    Never raises: whatever the peer sent becomes a 4xx/5xx.
    """
    try:
        _check_well_formed(request)
        _check_semantics(request, methods, extensions, content_types, schemes)
    except _Reject as exc:
        return exc.rejection
    return None


def _check_well_formed(request: Request) -> None:
    headers = request.headers
    for name in _MANDATORY:
        if name not in headers:
            raise _Reject(Rejection(400, f"Missing {name} header"))
    for name in _SINGULAR:
        if headers.count_raw(name) > 1:
            raise _Reject(Rejection(400, f"Multiple {name} headers"))
    try:
        uri = parse_uri(request.uri)
    except SipSyntaxError as exc:
        raise _Reject(Rejection(400, "Malformed Request-URI")) from exc
    if isinstance(uri, SipUri) and uri.headers is not None:
        # RFC 3261 19.1.1: headers are not allowed in a Request-URI (RFC 4475 3.1.2.11).
        raise _Reject(Rejection(400, "Headers not allowed in Request-URI"))
    _check_vias(request)
    for name in ("From", "To"):
        try:
            addr = parse_name_addr(headers.get(name) or "")
        except SipSyntaxError as exc:
            raise _bad(name) from exc
        if addr.wildcard:
            raise _bad(name, "wildcard")
    call_id = headers.get("Call-ID") or ""
    if not _CALL_ID_RE.fullmatch(call_id):
        raise _bad("Call-ID")
    try:
        parse_cseq(headers.get("CSeq") or "")
    except SipSyntaxError as exc:
        raise _bad("CSeq", "number above 2**32-1" if "range" in str(exc) else "") from exc
    max_forwards = headers.get("Max-Forwards")
    if max_forwards is not None and (not is_digits(max_forwards) or int(max_forwards) > 255):
        raise _bad("Max-Forwards", "not an integer 0..255")
    _check_contacts(request)
    _check_record_routes(headers)
    for value in headers.get_raw("Expires"):
        if not is_digits(value) or int(value) > MAX_UINT32:
            raise _bad("Expires")
    content_type = headers.get_raw("Content-Type")
    if len(content_type) > 1:
        raise _Reject(Rejection(400, "Multiple Content-Type headers"))
    if content_type and not _MEDIA_TYPE_RE.fullmatch(content_type[0]):
        raise _bad("Content-Type")


def _check_vias(request: Request) -> None:
    for raw in request.headers.get_raw("Via"):
        try:
            values = split_list(raw, strict=True)
            vias = [parse_via(value) for value in values]
        except SipSyntaxError as exc:
            raise _bad("Via") from exc
        for via in vias:
            if via.branch == "z9hG4bK":
                # A bare magic cookie (RFC 4475 3.2.1): not a usable RFC 3261 branch.
                raise _bad("Via", "branch is only the magic cookie")


def _check_record_routes(headers) -> None:
    """Record-Route becomes a dialog's route set, read again for every request we send in
    it (a BYE much later): an entry that does not parse is refused now, not then."""
    for raw in headers.get_raw("Record-Route"):
        try:
            for value in split_list(raw, strict=True):
                parse_name_addr(value)
        except SipSyntaxError as exc:
            raise _bad("Record-Route") from exc


def _check_contacts(request: Request) -> None:
    raws = request.headers.get_raw("Contact")
    for raw in raws:
        try:
            contacts = [parse_name_addr(value) for value in split_list(raw, strict=True)]
        except SipSyntaxError as exc:
            raise _bad("Contact") from exc
        for contact in contacts:
            if contact.wildcard:
                if request.method != "REGISTER" or len(raws) > 1 or len(split_list(raw)) > 1:
                    raise _bad("Contact", "misplaced *")
                continue
            expires = contact.param("expires")
            if expires is not None and (not is_digits(expires) or int(expires) > MAX_UINT32):
                raise _bad("Contact", "expires")
            q = contact.param("q")
            if q is not None and not _QVALUE_RE.fullmatch(q):
                raise _bad("Contact", "q")


def _check_semantics(request: Request, methods, extensions, content_types, schemes) -> None:
    method = request.method
    headers = request.headers
    if method not in methods:
        # RFC 3261 8.2.1; before the CSeq method comparison so that an unknown method
        # with a mismatching CSeq gets the preferred 501 (RFC 4475 3.1.2.18).
        allow = ", ".join(sorted(methods))
        raise _Reject(Rejection(501, "Not Implemented", (("Allow", allow),)))
    if request.cseq[1] != method:
        raise _Reject(Rejection(400, "CSeq method does not match the request method"))
    scheme = parse_uri(request.uri)
    if scheme.scheme not in schemes:
        raise _Reject(Rejection(416, "Unsupported URI Scheme"))
    if method == "REGISTER":
        # A registrar's check (RFC 3261 10.3 step 5): the AOR must be a SIP/SIPS URI.
        if isinstance(request.to.uri, AbsoluteUri):
            raise _Reject(Rejection(400, "To must be a SIP or SIPS URI"))
        for contact in request.contacts:
            if not contact.wildcard and contact.uri.scheme not in schemes:
                raise _Reject(Rejection(400, "Unsupported Contact URI scheme"))
    if method not in ("ACK", "CANCEL"):
        unknown = _unsupported_options(headers.get_all("Require"), extensions)
        if unknown:
            raise _Reject(Rejection(420, "Bad Extension", (("Unsupported", ", ".join(unknown)),)))
    if request.body.strip(b"\r\n \t"):
        content_type = request.content_type
        if content_type is None:
            raise _Reject(Rejection(400, "Body without Content-Type"))
        if content_type.replace(" ", "").replace("\t", "") not in content_types:
            accept = ", ".join(sorted(content_types))
            raise _Reject(Rejection(415, "Unsupported Media Type", (("Accept", accept),)))
        encodings = [e.lower() for e in headers.get_all("Content-Encoding")]
        if any(e != "identity" for e in encodings):
            raise _Reject(Rejection(415, "Unsupported Media Type",
                                    (("Accept-Encoding", "identity"),)))
    if method == "INVITE" and "Accept" in headers:
        if not _accepts(headers.get_all("Accept"), "application/sdp"):
            raise _Reject(Rejection(406, "Not Acceptable"))


def _unsupported_options(values: list[str], extensions: frozenset[str]) -> list[str]:
    known = {ext.lower() for ext in extensions}
    return [value for value in values if value.lower() not in known]


def _accepts(ranges: list[str], media_type: str) -> bool:
    main, _, sub = media_type.partition("/")
    for item in ranges:
        match = _MEDIA_TYPE_RE.fullmatch(item.strip())
        if not match:
            continue
        a, b = match.group(1).lower(), match.group(2).lower()
        params = match.group(3) or ""
        if re.search(r";[ \t]*q[ \t]*=[ \t]*0(?:\.0*)?[ \t]*(?:;|$)", params):
            continue  # q=0 means "not acceptable"
        if (a == "*" and b == "*") or (a == main and b in ("*", sub)):
            return True
    return False


def should_accept_response(response: Response) -> bool:
    """Whether a UAC's transport may pass ``response`` up (RFC 3261 18.1.2, 8.1.3).

    Dropped: more than one Via (the response was not meant for us; RFC 4475 3.3.10),
    a Via, CSeq, From, To or Call-ID that is missing or does not parse (3.1.2.5).
    The sent-by comparison against our own address is the transport's job.
    """
    headers = response.headers
    if not 100 <= response.status <= 699:
        return False
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        if len(headers.get_raw(name)) != 1:
            return False
    try:
        vias = split_list(headers.get_raw("Via")[0], strict=True)
        if len(vias) != 1:
            return False
        parse_via(vias[0])
        _, method = parse_cseq(headers.get("CSeq") or "")
        parse_name_addr(headers.get("From") or "")
        parse_name_addr(headers.get("To") or "")
        _check_record_routes(headers)
    except (SipSyntaxError, _Reject):
        return False
    return is_token(method) and _CALL_ID_RE.fullmatch(headers.get("Call-ID") or "") is not None


def rejection_response(request: Request, rejection: Rejection, to_tag: str | None = None) -> Response:
    """The response carrying ``rejection`` (RFC 3261 8.2.6), with its extra headers."""
    return make_response(request, rejection.status, rejection.reason, to_tag=to_tag,
                         extra=list(rejection.headers))
