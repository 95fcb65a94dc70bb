"""SIP messages: the data model, the datagram/stream parsers and the serialiser.

Pure (STYLE rule 1): bytes in, :class:`Request` / :class:`Response` out, and back.
Parse failures raise :class:`SipParseError` carrying the status the RFC asks for and,
when the start line and headers could be read, the partial request so the transport
can still answer it (a 400 needs the Via, From, To, Call-ID and CSeq).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .headers import Headers, canonical_name
from .uri import (
    NameAddr,
    SipSyntaxError,
    Via,
    is_digits,
    is_rfc3261_branch,
    is_token,
    parse_cseq,
    parse_name_addr,
    parse_via,
)

SIP_VERSION = "SIP/2.0"
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024

REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 301: "Moved Permanently",
    302: "Moved Temporarily", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    413: "Request Entity Too Large", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required",
    423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 491: "Request Pending", 500: "Server Internal Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


class SipParseError(ValueError):
    """The peer sent a message we cannot accept.

    ``status`` is the response the RFC asks for (400, 505, 513), or ``None`` when the
    message must be silently dropped (a malformed response, unreadable garbage).
    ``request`` is the partially parsed request when one could be read, so a response
    can be built from its headers.  ``headers`` are whatever header lines could be read
    (also for responses), which lets a stream still find the next message.
    """

    def __init__(self, reason: str, status: int | None = 400, request: "Request | None" = None,
                 headers: Headers | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.request = request
        self.headers = headers if headers is not None else (
            request.headers if request is not None else None)


class FramingError(SipParseError):
    """A stream can no longer be framed (bad Content-Length): close the connection.

    ``messages`` holds what the same ``feed`` call framed before the error.
    """

    messages: list = []


@dataclass(eq=False)
class _Message:
    headers: Headers
    body: bytes

    # -- typed accessors, parsed on demand (the peer's errors raise SipSyntaxError) --
    @property
    def call_id(self) -> str | None:
        return self.headers.get("Call-ID")

    @property
    def cseq(self) -> tuple[int, str]:
        value = self.headers.get("CSeq")
        if value is None:
            raise SipSyntaxError("missing CSeq")
        return parse_cseq(value)

    @property
    def vias(self) -> list[Via]:
        return [parse_via(v) for v in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via:
        value = self.headers.get("Via")
        if value is None:
            raise SipSyntaxError("missing Via")
        return parse_via(value)

    @property
    def from_(self) -> NameAddr:
        return _required_addr(self.headers, "From")

    @property
    def to(self) -> NameAddr:
        return _required_addr(self.headers, "To")

    @property
    def contacts(self) -> list[NameAddr]:
        return [parse_name_addr(v) for v in self.headers.get_all("Contact")]

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        return value.split(";")[0].strip().lower() if value else None


def _required_addr(headers: Headers, name: str) -> NameAddr:
    value = headers.get(name)
    if value is None:
        raise SipSyntaxError(f"missing {name}")
    return parse_name_addr(value)


@dataclass(eq=False)
class Request(_Message):
    method: str = ""
    uri: str = ""
    version: str = SIP_VERSION

    def __init__(self, method: str, uri: str, headers: Headers | None = None,
                 body: bytes = b"", version: str = SIP_VERSION) -> None:
        self.method = method
        self.uri = str(uri)
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self.version = version

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri} call-id={self.call_id}>"


@dataclass(eq=False)
class Response(_Message):
    status: int = 0
    reason: str = ""
    version: str = SIP_VERSION

    def __init__(self, status: int, reason: str | None = None, headers: Headers | None = None,
                 body: bytes = b"", version: str = SIP_VERSION) -> None:
        self.status = status
        self.reason = REASONS.get(status, "Unknown") if reason is None else reason
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self.version = version

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} call-id={self.call_id}>"


Message = Request | Response


def serialize(message: Message) -> bytes:
    """Wire form with CRLF line ends and a Content-Length that matches the body.

    Content-Length keeps its position when the message has one (so a parsed message
    round-trips byte for byte), else it is appended.
    """
    lines = [message.start_line()]
    length = f"Content-Length: {len(message.body)}"
    for name, value in message.headers:
        if name == "Content-Length":
            if length:
                lines.append(length)
                length = ""
            continue
        lines.append(f"{name}: {value}" if value else f"{name}:")
    if length:
        lines.append(length)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + message.body


# -- parsing ---------------------------------------------------------------------------

_RESPONSE_RE = re.compile(r"(SIP/[0-9]+\.[0-9]+) ([0-9]{3})(?: (.*))?", re.S | re.I)
_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+", re.I)
_HEADER_END = re.compile(rb"\r\n\r\n|\n\n")
_LINE_END = re.compile(r"\r\n|\n")


def _split_head(data: bytes) -> tuple[bytes, bytes] | None:
    match = _HEADER_END.search(data)
    if match is None:
        return None
    return data[: match.start()], data[match.end() :]


def _unfold(head: str) -> list[str]:
    """Split into lines and join continuation lines (RFC 3261 7.3.1 folding)."""
    if "\n " not in head and "\n\t" not in head:
        return _LINE_END.split(head)  # no line starts with LWS: nothing to join
    lines: list[str] = []
    for line in _LINE_END.split(head):
        if line[:1] in (" ", "\t") and len(lines) > 1:
            lines[-1] = lines[-1].rstrip(" \t") + " " + line.strip(" \t")
        else:
            lines.append(line)
    return lines


def _parse_headers(lines: list[str]) -> tuple[Headers, str | None]:
    items: list[tuple[str, str]] = []
    bad_header: str | None = None
    names = _HEADER_NAMES
    for line in lines:
        name, colon, value = line.partition(":")
        key = names.get(name) if colon else None
        if key is None:
            name = name.rstrip(" \t")
            if not colon or not is_token(name):
                if bad_header is None:
                    bad_header = line
                continue
            key = canonical_name(name)
            if len(names) < _HEADER_NAMES_SIZE and len(name) <= 64:
                names[name] = key
        items.append((key, value.strip(" \t")))
    return Headers._canonical(items), bad_header


#: Header names as written on the wire that were found to be tokens, with their
#: canonical form: the same few dozen names start every line of every message.  Bounded
#: so a peer inventing names cannot grow it.
_HEADER_NAMES: dict[str, str] = {}
_HEADER_NAMES_SIZE = 1024


def parse_head(head: bytes) -> Request | Response:
    """Parse the start line and headers (no body).  Raises SipParseError."""
    lines = _unfold(head.decode("utf-8", "surrogateescape"))
    while lines and lines[0] == "":
        lines.pop(0)  # stray CRLFs before a message are allowed (RFC 3261 7.5)
    if not lines:
        raise SipParseError("empty message", status=None)
    start = lines[0]
    headers, bad_header = _parse_headers(lines[1:])
    if start[:4].upper() == "SIP/":
        match = _RESPONSE_RE.fullmatch(start)
        if not match:
            raise SipParseError(f"bad status line {start[:80]!r}", status=None, headers=headers)
        version, code, reason = match.groups()
        response = Response(int(code), reason or "", headers, b"", version.upper())
        if bad_header is not None:
            raise SipParseError(f"bad header line {bad_header[:80]!r}", status=None, headers=headers)
        if response.version != SIP_VERSION or not 100 <= response.status <= 699:
            raise SipParseError(f"unsupported status line {start[:80]!r}", status=None,
                                headers=headers)
        return response
    parts = start.split(" ")
    if len(parts) != 3 or not all(parts):
        words = [part for part in parts if part]
        partial = Request(words[0], words[1], headers) if len(words) >= 2 else None
        raise SipParseError(f"bad request line {start[:80]!r}", request=partial, headers=headers)
    method, uri, version = parts
    request = Request(method, uri, headers, b"", version)
    if not is_token(method):
        raise SipParseError(f"bad method {method[:40]!r}", request=request)
    if bad_header is not None:
        raise SipParseError(f"bad header line {bad_header[:80]!r}", request=request)
    if not _VERSION_RE.fullmatch(version):
        raise SipParseError(f"bad SIP version {version[:20]!r}", request=request)
    request.version = version.upper()
    if request.version != SIP_VERSION:
        raise SipParseError(f"SIP version {version} not supported", status=505, request=request)
    return request


def _content_length(headers: Headers, request: Request | None) -> int | None:
    values = headers.get_raw("Content-Length")
    if not values:
        return None
    parsed = set()
    for value in values:
        if not is_digits(value):
            raise SipParseError(f"bad Content-Length {value[:20]!r}", request=request,
                                headers=headers)
        parsed.add(int(value))
    if len(parsed) > 1:
        raise SipParseError("conflicting Content-Length values", request=request, headers=headers)
    return parsed.pop()


def _req(message) -> Request | None:
    return message if isinstance(message, Request) else None


def _fail(message, reason: str, status: int | None = 400):
    if isinstance(message, Response):
        raise SipParseError(reason, status=None, headers=message.headers)
    raise SipParseError(reason, status=status, request=message)


def parse_datagram(data: bytes) -> Request | Response:
    """Parse one UDP datagram (RFC 3261 18.3: the body is framed by Content-Length if
    present, else by the end of the datagram; octets past Content-Length are ignored).
    CRLFs before the start line are skipped (RFC 3261 7.5)."""
    data = data.lstrip(b"\r\n")
    split = _split_head(data)
    head = data if split is None else split[0]
    if len(head) > MAX_HEADER_BYTES:
        raise SipParseError("header section too large", status=None)
    if split is None:
        message = parse_head(data.rstrip(b"\r\n"))
        _fail(message, "header section not terminated by an empty line")
    rest = split[1]
    message = parse_head(head)
    length = _content_length(message.headers, _req(message))
    if length is None:
        message.body = rest
    elif length > len(rest):
        _fail(message, f"Content-Length {length} larger than the {len(rest)} body bytes")
    else:
        message.body = rest[:length]
    return message


class StreamParser:
    """Frames messages on a stream transport (TCP).  Feed bytes, collect messages.

    Content-Length is mandatory on streams (RFC 3261 18.3; absent means 0).  A message
    whose start line or headers are bad but whose Content-Length is readable is returned
    as a :class:`SipParseError` (answer it, keep the connection).  A framing error raises
    :class:`FramingError`: the connection cannot be resynchronised and must be closed.
    A bare CRLFCRLF keep-alive (RFC 5626 4.4.1) is reported as the string ``"ping"``
    so the transport can answer with CRLF.
    """

    def __init__(self, max_header_bytes: int = MAX_HEADER_BYTES,
                 max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self._buffer = bytearray()
        self._max_header = max_header_bytes
        self._max_body = max_body_bytes
        self._scan = 0  # where the search for the end of the header section resumes
        self._crlfs = 0  # CRLFs seen between messages; two make a keep-alive ping
        self._pending: Request | Response | SipParseError | None = None
        self._pending_length = 0

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def waiting_for_body(self) -> bool:
        """A header section was framed and its body has not fully arrived yet."""
        return self._pending is not None

    def feed(self, data: bytes) -> list[Request | Response | str | SipParseError]:
        """Return complete messages, ``"ping"`` keep-alives, and per-message parse errors
        (answerable with a status).  Raises FramingError when the stream is unusable."""
        self._buffer += data
        out: list = []
        try:
            self._drain(out)
        except FramingError as exc:
            exc.messages = out
            raise
        return out

    def _drain(self, out: list) -> None:
        while True:
            if self._pending is None and not self._frame_head(out):
                return
            if len(self._buffer) < self._pending_length:
                return
            item, length = self._pending, self._pending_length
            body = bytes(self._buffer[:length])
            del self._buffer[:length]
            if isinstance(item, SipParseError):
                if item.request is not None:
                    item.request.body = body
            else:
                item.body = body
            self._pending = None
            out.append(item)

    def _frame_head(self, out: list) -> bool:
        buf = self._buffer
        while buf[:1] == b"\n" or buf[:2] == b"\r\n":
            if buf[:1] == b"\n":
                del buf[:1]
                continue
            del buf[:2]
            self._crlfs += 1
            if self._crlfs == 2:
                out.append("ping")
                self._crlfs = 0
        match = _HEADER_END.search(buf, max(0, self._scan - 3))
        if match is None:
            self._scan = len(buf)
            if len(buf) > self._max_header:
                raise FramingError("header section too large", status=None)
            return False
        if match.start() > self._max_header:
            raise FramingError("header section too large", status=None)
        head = bytes(buf[: match.start()])
        del buf[: match.end()]
        self._scan = self._crlfs = 0
        item: Request | Response | SipParseError
        try:
            item = parse_head(head)
            headers, request = item.headers, _req(item)
        except SipParseError as exc:
            if exc.headers is None:
                raise FramingError(exc.reason, status=None) from None
            item, headers, request = exc, exc.headers, exc.request
        try:
            length = _content_length(headers, request) or 0
        except SipParseError as exc:
            raise FramingError(exc.reason, status=400 if request else None,
                               request=request) from None
        if length > self._max_body:
            raise FramingError("body too large", status=413 if request else None, request=request)
        self._pending, self._pending_length = item, length
        return True


def make_response(request: Request, status: int, reason: str | None = None,
                  to_tag: str | None = None, body: bytes = b"",
                  extra: list[tuple[str, str]] | None = None) -> Response:
    """Build a response to ``request`` per RFC 3261 8.2.6.2: copy Via (all, in order),
    From, To (adding ``to_tag`` when the request's To has none), Call-ID and CSeq."""
    items: list[tuple[str, str]] = []
    get_raw = request.headers.get_raw
    for name in _RESPONSE_COPIES:
        for value in get_raw(name):
            if name == "To" and to_tag and ";tag=" not in value.replace(" ", "").lower():
                value = f"{value};tag={to_tag}"
            items.append((name, value))
    headers = Headers._canonical(items)
    if status == 100 and "Timestamp" in request.headers:
        headers.add("Timestamp", request.headers.get("Timestamp"))
    for name, value in extra or ():
        headers.add(name, value)
    return Response(status, reason, headers, body)


#: What a response copies from its request (canonical names), in this order.
_RESPONSE_COPIES = ("Via", "From", "To", "Call-ID", "CSeq")
