"""What the API accepts from a client before any handler runs.

Everything here answers a client's mistake with an :class:`ApiError` (400 or 413, the
usual ``{"error": {"code", "message"}}`` shape), so nothing a client sends can reach a
handler as a surprise (a ``RecursionError`` from a deeply nested body, a
``UnicodeDecodeError`` from ``%ff`` in a path) and come back as a 500:

* the request target: a path and query string whose percent-escapes are well formed and
  decode to UTF-8, and a UTF-8 ``Host`` (twisted.web itself refuses a request line that
  is not HTTP, with a bare 400, before the API sees it);
* the body: at most :data:`MAX_BODY` bytes (413 ``body_too_large``);
* JSON bodies: UTF-8, RFC 8259 (no ``NaN``/``Infinity``, no number too big for a float,
  no unpaired surrogate), nested at most :data:`MAX_DEPTH` arrays/objects deep.

:class:`GuardedResource` applies the request checks in front of the klein resource (the
body has then been read: twisted.web buffers it, to a temporary file over 100 KB).
:class:`CappedRequest`, a Site's ``requestFactory``, refuses an over-cap body while it
arrives instead: 413 as soon as ``Content-Length`` (or the chunks so far) pass the cap,
then the connection closes, so nothing past the cap is stored.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Callable
from urllib.parse import unquote_to_bytes

from twisted.web.resource import Resource
from twisted.web.server import Request

from .errors import ApiError

#: The largest request body the API reads (bytes); the biggest real request is ~3 KB.
MAX_BODY = 64 * 1024
#: How many arrays/objects deep a JSON body may nest (real bodies use 2).
MAX_DEPTH = 32

_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
# A JSON string (possibly unterminated: it then runs to the end) or a bracket.  Strings
# are consumed whole, so a bracket inside one is not counted; the pattern cannot fail
# part-way, so the scan is linear in the body.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+"?|[\[\]{}]', re.S)


def check_target(request) -> None:
    """400 for a path, query string or Host header we could not decode."""
    path, _, query = (request.uri or b"").partition(b"?")
    for part, what in ((path, "path"), (query, "query string")):
        if _BAD_ESCAPE.search(part):
            raise ApiError(400, "invalid_url",
                           f"the {what} has a '%' that is not followed by two hex digits")
        try:
            unquote_to_bytes(part).decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "invalid_url",
                           f"the {what} is not UTF-8 once percent-decoded") from None
    try:
        request.getRequestHostname().decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_host", "the Host header is not UTF-8") from None


def body_size(request) -> int:
    content = getattr(request, "content", None)
    if content is None:
        return 0
    here = content.tell()
    content.seek(0, 2)
    size = content.tell()
    content.seek(here)
    return size


def check_body_size(request, max_body: int = MAX_BODY) -> None:
    """413 for a body over ``max_body`` bytes, whatever the method or path."""
    if body_size(request) > max_body:
        raise ApiError(413, "body_too_large", f"the request body is over {max_body} bytes")


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def nesting_depth(text: str) -> int:
    """How deep arrays/objects nest in ``text`` (brackets inside strings not counted)."""
    depth = deepest = 0
    for token in _JSON_TOKEN.finditer(text):
        ch = token.group()
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def parse_json_value(raw: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """A request body -> any JSON value, or ApiError 400 ``invalid_json``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_json", "the body is not UTF-8") from None
    if nesting_depth(text) > max_depth:
        raise ApiError(400, "invalid_json",
                       f"the body nests arrays/objects more than {max_depth} deep")
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "invalid_json",
                       "the body holds an unpaired UTF-16 surrogate (\\ud800-\\udfff)") from None
    return value


class GuardedResource(Resource):
    """``inner`` (the klein resource) behind the request-line and body-size checks.

    ``answer(request, error)`` renders a refused request (the API's JSON error)."""

    isLeaf = True

    def __init__(self, inner: Resource, answer: Callable[[Any, ApiError], bytes],
                 max_body: int = MAX_BODY) -> None:
        super().__init__()
        self.inner = inner
        self.answer = answer
        self.max_body = max_body

    def render(self, request):
        try:
            check_target(request)
            check_body_size(request, self.max_body)
        except ApiError as err:
            return self.answer(request, err)
        return self.inner.render(request)


class CappedRequest(Request):
    """A ``twisted.web.server.Request`` that stops reading a body over ``max_body``.

    ``Site(root, requestFactory=CappedRequest)``.  The 413 is written straight to the
    connection (the request never reaches a resource) and the connection is closed."""

    max_body = MAX_BODY
    _refused = False
    _received = 0

    def gotLength(self, length):
        if length is not None and length > self.max_body:
            self._refuse()
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data):
        if self._refused:
            return
        self._received += len(data)
        if self._received > self.max_body:
            self._refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command, path, version):
        if not self._refused:
            super().requestReceived(command, path, version)

    def _refuse(self) -> None:
        self._refused = True
        self.requestHeaders.removeHeader(b"expect")   # no "100 Continue" after the 413
        body = ApiError(413, "body_too_large",
                        f"the request body is over {self.max_body} bytes").body()
        self.channel.transport.write(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
            b"Cache-Control: no-store\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.channel.loseConnection()
