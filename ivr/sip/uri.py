"""SIP URIs (RFC 3261 19.1), name-addr / addr-spec (20.10) and Via (20.42): the grammar.

What a name-addr means for a call (the party, its number, E.164) is read from this grammar
by :mod:`ivr.sip.address`, which stays out of the message parser's imports (phonenumbers).

Pure: no I/O.  Parsers raise :class:`SipSyntaxError` (peer's garbage); values are kept
escaped as received so nothing is unescaped twice (RFC 4475 3.1.1.3).  IPv6 references
follow RFC 5118 (including its tolerated ``:::`` ABNF bug, section 4.10).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace
from urllib.parse import unquote

# The basic rules live in .lexical; they are re-exported here, where the rest of the
# code (and its tests) has always imported them from.
from .lexical import (  # noqa: F401
    _PARAM_VALUE_RE,
    _TOKEN_CHARS,
    SipSyntaxError,
    _check_host,
    _format_params,
    _ipv6,
    _parse_header_params,
    _parse_port,
    _scan_header_params,
    _skip_lws,
    is_digits,
    is_ip_address,
    is_token,
    param,
    quote_string,
    read_quoted,
    unquote_string,
    with_param,
)

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_ESC = r"%[0-9A-Fa-f]{2}"
_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"
# user = 1*( unreserved / escaped / user-unreserved ); '#' is not legal but widely sent
# by phones for feature codes, so it is tolerated.
_USER_RE = re.compile(rf"(?:[{_UNRESERVED}&=+$,;?/#]|{_ESC})+")
_PASSWORD_RE = re.compile(rf"(?:[{_UNRESERVED}&=+$,]|{_ESC})*")
_PARAMCHARS_RE = re.compile(rf"(?:[{_UNRESERVED}\[\]/:&+$]|{_ESC})+")
_HNV_RE = re.compile(rf"(?:[{_UNRESERVED}\[\]/?:+$]|{_ESC})*")
_OPAQUE_BAD = frozenset(' \t\r\n<>"\\^`{|}')
#: A character a URI may not hold: _OPAQUE_BAD, controls and anything outside ASCII
#: (the regex form of the check in parse_uri; tests keep the two in agreement).
_URI_BAD_RE = re.compile(r'[^\x21-\x7e]|[<>"\\^`{|}]')
#: Largest value of a 32-bit unsigned scalar (CSeq, Expires: RFC 3261 8.1.1.5, 20.19).
MAX_UINT32 = 2**32 - 1
MAGIC_COOKIE = "z9hG4bK"


#: Memo of the header parsers below: how many texts, and the longest text kept.  1024: a
#: message's headers are re-read within the same reactor turn, and a short call's From/To
#: within well under a second even at 1000 calls/s (~6 new texts per call); four full memos
#: of 4096 held 6.3 MB, which bench MEM counted as 6 KB per call at 1000 calls.
MEMO_SIZE = 1024
MEMO_MAX_TEXT = 512


def _memoised(parse):
    """Remember ``parse``'s answers by the exact text.

    The parsed values are frozen, so one text always parses to an equal value and
    sharing it is safe; a header that is changed is a different text, so nothing needs
    invalidating.  A dialog's From/To/Contact and a transaction's Via are re-parsed for
    every message, retransmission and layer that reads them; the memo turns those into a
    dict lookup.  Errors are not remembered (the peer's garbage raises every time), only
    short texts are kept and the memo is emptied when full, so a flood of distinct
    headers cannot grow it past ``MEMO_SIZE`` small entries.
    """
    cache: dict = {}

    @functools.wraps(parse)
    def memo(text):
        try:
            return cache[text]
        except (KeyError, TypeError):
            pass
        value = parse(text)
        if isinstance(text, str) and len(text) <= MEMO_MAX_TEXT:
            if len(cache) >= MEMO_SIZE:
                cache.clear()
            cache[text] = value
        return value

    memo.cache = cache  # type: ignore[attr-defined]
    return memo


def is_rfc3261_branch(branch: str | None) -> bool:
    """True when ``branch`` carries the magic cookie *and* an identifier after it
    (RFC 3261 8.1.1.7).  Otherwise RFC 2543 transaction matching applies (17.2.3)."""
    return branch is not None and branch.startswith(MAGIC_COOKIE) and len(branch) > len(MAGIC_COOKIE)


def _parse_params(text: str) -> tuple[tuple[str, str | None], ...]:
    """URI parameters (``;lr;transport=tcp``): no LWS, paramchars only."""
    params = []
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if not _PARAMCHARS_RE.fullmatch(name) or (sep and not _PARAMCHARS_RE.fullmatch(value)):
            raise SipSyntaxError(f"bad URI parameter {part!r}")
        params.append((name, value if sep else None))
    return tuple(params)


def _check_uri_headers(text: str) -> None:
    for item in text.split("&"):
        name, sep, value = item.partition("=")
        if not sep or not name or not _HNV_RE.fullmatch(name) or not _HNV_RE.fullmatch(value):
            raise SipSyntaxError(f"bad URI header {item!r}")


@dataclass(frozen=True)
class SipUri:
    """``sip:`` / ``sips:`` URI.  ``user`` and params are kept in their escaped form."""

    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    headers: str | None = None  # the raw ``?h=v&...`` part, still escaped

    def param(self, name: str, default=None):
        return param(self.params, name, default)

    def with_param(self, name: str, value: str | None = None) -> "SipUri":
        return replace(self, params=with_param(self.params, name, value))

    @property
    def user_unescaped(self) -> str | None:
        return unquote(self.user) if self.user is not None else None

    @property
    def host_no_brackets(self) -> str:
        return self.host[1:-1] if self.host.startswith("[") else self.host

    @property
    def transport(self) -> str:
        return (self.param("transport") or ("tls" if self.scheme == "sips" else "udp")).lower()

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(_format_params(self.params))
        if self.headers is not None:
            out.append("?" + self.headers)
        return "".join(out)


@dataclass(frozen=True)
class AbsoluteUri:
    """Any other scheme (``tel:``, ``im:``, ``mailto:``, ``soap.beep:``), kept opaque."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"

    def param(self, name: str, default=None):
        return default


@_memoised
def parse_uri(text: str) -> SipUri | AbsoluteUri:
    """Parse an absolute URI; ``sip``/``sips`` get the full RFC 3261 19.1 grammar."""
    if not text or _URI_BAD_RE.search(text) is not None:
        raise SipSyntaxError(f"bad URI {text!r}")
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME_RE.fullmatch(scheme) or not rest:
        raise SipSyntaxError(f"bad URI {text!r}")
    lower = scheme.lower()
    if lower not in ("sip", "sips"):
        return AbsoluteUri(lower, rest)
    user = password = None
    if "@" in rest:
        # userinfo may hold ';', '?', '/', ',' (RFC 4475 3.1.1.2, 3.1.1.9); no later part
        # of the URI may hold '@', so the last '@' ends it.
        userinfo, _, rest = rest.rpartition("@")
        user, sep, pw = userinfo.partition(":")
        if not _USER_RE.fullmatch(user):
            raise SipSyntaxError(f"bad user part in {text!r}")
        if sep:
            if not _PASSWORD_RE.fullmatch(pw):
                raise SipSyntaxError(f"bad password in {text!r}")
            password = pw
    headers = None
    if "?" in rest:
        rest, _, headers = rest.partition("?")
        _check_uri_headers(headers)
    hostport, semi, param_text = rest.partition(";")
    params = _parse_params(param_text) if semi else ()
    port_text: str | None = None
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise SipSyntaxError(f"unterminated IPv6 reference in {text!r}")
        host, after = hostport[: end + 1], hostport[end + 1 :]
        if after:
            if not after.startswith(":"):
                raise SipSyntaxError(f"bad host in {text!r}")
            port_text = after[1:]
    else:
        host, sep, port_text = hostport.partition(":")
        if not sep:
            port_text = None
        elif ":" in port_text:
            raise SipSyntaxError(f"IPv6 address must be enclosed in [ ] in {text!r}")
    port = _parse_port(port_text, text) if port_text is not None else None
    return SipUri(lower, user, password, _check_host(host), port, params, headers)


# -- name-addr -------------------------------------------------------------------


@dataclass(frozen=True)
class NameAddr:
    """A From/To/Contact/Route value: optional display name, URI, header parameters."""

    uri: SipUri | AbsoluteUri
    display: str | None = None  # unquoted
    params: tuple[tuple[str, str | None], ...] = ()
    wildcard: bool = False  # Contact: *

    @property
    def tag(self) -> str | None:
        return param(self.params, "tag")

    def param(self, name: str, default=None):
        return param(self.params, name, default)

    def with_param(self, name: str, value: str | None) -> "NameAddr":
        return replace(self, params=with_param(self.params, name, value))

    def __str__(self) -> str:
        if self.wildcard:
            return "*"
        head = f"{quote_string(self.display)} " if self.display else ""
        return f"{head}<{self.uri}>{_format_params(self.params)}"


@_memoised
def parse_name_addr(text: str) -> NameAddr:
    """Parse ``"Name" <sip:u@h>;tag=1``, ``Name <sip:u@h>``, or a bare ``sip:u@h;tag=1``."""
    text = text.strip(" \t")
    if text == "*":
        return NameAddr(AbsoluteUri("*", ""), wildcard=True)
    display = None
    i = 0
    if text.startswith('"'):
        raw, i = read_quoted(text, 0)
        display = unquote_string(raw)
        i = _skip_lws(text, i)
        if i >= len(text) or text[i] != "<":
            raise SipSyntaxError("quoted display name not followed by <uri>")
    lt = text.find("<", i)
    if lt >= 0:
        if display is None:
            token_part = text[:lt].strip(" \t")
            if token_part:
                words = token_part.split()
                if not all(is_token(w) for w in words):
                    raise SipSyntaxError(f"bad display name {token_part!r}")
                display = " ".join(words)
        gt = text.find(">", lt)
        if gt < 0:
            raise SipSyntaxError("unterminated <uri>")
        uri = parse_uri(text[lt + 1 : gt])  # LAQUOT/RAQUOT allow no LWS inside (badaspec)
        params = _parse_header_params(text[gt + 1 :])
        return NameAddr(uri, display, params)
    # addr-spec: URI parameters cannot be told from header parameters, so per RFC 3261
    # 20.10 everything after the first ';' is a header parameter (RFC 4475 3.3.12).
    uri_text, sep, rest = text.partition(";")
    uri = parse_uri(uri_text.strip(" \t"))
    if isinstance(uri, SipUri) and uri.headers is not None:
        raise SipSyntaxError("URI with headers must be enclosed in <>")
    if any(ch in uri_text for ch in ",?"):
        raise SipSyntaxError("URI with ',' or '?' must be enclosed in <>")
    params = _parse_header_params(";" + rest) if sep else ()
    return NameAddr(uri, None, params)


# -- Via -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Via:
    transport: str
    host: str
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    protocol: str = "SIP/2.0"

    def param(self, name: str, default=None):
        return param(self.params, name, default)

    def with_param(self, name: str, value: str | None) -> "Via":
        return replace(self, params=with_param(self.params, name, value))

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    @property
    def is_rfc3261(self) -> bool:
        return is_rfc3261_branch(self.branch)

    @property
    def host_no_brackets(self) -> str:
        return self.host[1:-1] if self.host.startswith("[") else self.host

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.protocol}/{self.transport} {self.host}{port}{_format_params(self.params)}"


_VIA_RE = re.compile(
    r"[ \t]*([A-Za-z0-9.\-!%*_+`'~]+)[ \t]*/[ \t]*([A-Za-z0-9.\-!%*_+`'~]+)[ \t]*/[ \t]*"
    r"([A-Za-z0-9.\-!%*_+`'~]+)[ \t]+(.*)", re.S
)


_VIA_HOST_RE = re.compile(r"[^ \t:;]+")
_VIA_PORT_RE = re.compile(r":[ \t]*([0-9]+)")


@_memoised
def parse_via(text: str) -> Via:
    match = _VIA_RE.fullmatch(text)
    if not match:
        raise SipSyntaxError(f"bad Via {text!r}")
    name, version, transport, rest = match.groups()
    rest = rest.strip(" \t")
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise SipSyntaxError(f"bad Via host {text!r}")
        host, rest = rest[: end + 1], rest[end + 1 :]
    else:
        m = _VIA_HOST_RE.match(rest)
        if not m:
            raise SipSyntaxError(f"bad Via host {text!r}")
        host, rest = m.group(0), rest[m.end() :]
    _check_host(host)
    rest = rest.lstrip(" \t")
    port = None
    if rest.startswith(":"):
        m = _VIA_PORT_RE.match(rest)
        if not m:
            raise SipSyntaxError(f"bad Via port {text!r}")
        port = _parse_port(m.group(1), text)
        rest = rest[m.end() :]
    params = _parse_header_params(rest)
    for key, value in params:
        lower = key.lower()
        if lower == "branch" and not value:
            raise SipSyntaxError("branch without value")
        if lower == "received" and (value is None or not is_ip_address(value)):
            raise SipSyntaxError(f"received={value!r} is not an IP address")
        if lower == "rport" and value is not None:
            _parse_port(value, text)
        if lower == "ttl" and (value is None or not is_digits(value) or int(value) > 255):
            raise SipSyntaxError(f"bad ttl {value!r}")
    return Via(transport.upper(), host, port, params, f"{name.upper()}/{version}")


@_memoised
def parse_cseq(text: str) -> tuple[int, str]:
    parts = text.split()
    if len(parts) != 2 or not is_digits(parts[0]) or not is_token(parts[1]):
        raise SipSyntaxError(f"bad CSeq {text!r}")
    number = int(parts[0])
    if number > MAX_UINT32:
        raise SipSyntaxError(f"CSeq number {parts[0]} out of range (RFC 3261 8.1.1.5)")
    return number, parts[1]
