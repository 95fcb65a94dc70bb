"""SIP URIs (RFC 3261 19.1), name-addr / addr-spec (20.10) and Via (20.42).

Pure: no I/O.  Parsers raise :class:`SipSyntaxError` (peer's garbage); values are kept
escaped as received so nothing is unescaped twice (RFC 4475 3.1.1.3).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from urllib.parse import unquote


class SipSyntaxError(ValueError):
    """The peer sent something that does not follow the SIP grammar."""


_TOKEN_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*$")
_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.?$")
_IPV4_RE = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
_IPV6_CHARS = set("0123456789abcdefABCDEF:.")


def is_token(text: str) -> bool:
    return bool(text) and all(ch in _TOKEN_CHARS for ch in text)


def _check_host(host: str) -> str:
    if host.startswith("["):
        if not host.endswith("]") or len(host) < 4:
            raise SipSyntaxError(f"bad IPv6 reference {host!r}")
        inner = host[1:-1]
        if not set(inner) <= _IPV6_CHARS or ":" not in inner:
            raise SipSyntaxError(f"bad IPv6 reference {host!r}")
        return host
    if _IPV4_RE.match(host):
        if any(int(part) > 255 for part in host.split(".")):
            raise SipSyntaxError(f"bad IPv4 address {host!r}")
        return host
    if ":" in host:
        raise SipSyntaxError(f"IPv6 address {host!r} must be enclosed in [ ] (RFC 5118 4.2)")
    if not _HOSTNAME_RE.match(host):
        raise SipSyntaxError(f"bad host {host!r}")
    return host


def _parse_params(text: str) -> tuple[tuple[str, str | None], ...]:
    params = []
    for part in text.split(";"):
        if part == "":
            raise SipSyntaxError("empty parameter")
        name, sep, value = part.partition("=")
        if not name or any(ch in " \t" for ch in name):
            raise SipSyntaxError(f"bad parameter {part!r}")
        params.append((name, value if sep else None))
    return tuple(params)


def _format_params(params: tuple[tuple[str, str | None], ...]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def param(params: tuple[tuple[str, str | None], ...], name: str, default=None):
    lower = name.lower()
    for key, value in params:
        if key.lower() == lower:
            return value if value is not None else ""
    return default


def with_param(params, name: str, value: str | None):
    lower = name.lower()
    out = [(k, v) for k, v in params if k.lower() != lower]
    out.append((name, value))
    return tuple(out)


@dataclass(frozen=True)
class SipUri:
    """``sip:`` / ``sips:`` URI.  ``user`` and params are kept in their escaped form."""

    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    headers: str | None = None  # the raw ``?h=v&...`` part, unparsed

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
    """Any other scheme (``tel:``, ``im:``, ``mailto:``, ``soap.beep:``)."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"

    def param(self, name: str, default=None):
        return default


def parse_uri(text: str) -> SipUri | AbsoluteUri:
    """Parse an absolute URI; ``sip``/``sips`` get the full grammar."""
    if not text or any(ch in " \t\r\n<>" for ch in text):
        raise SipSyntaxError(f"bad URI {text!r}")
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME_RE.match(scheme) or not rest:
        raise SipSyntaxError(f"bad URI {text!r}")
    lower = scheme.lower()
    if lower not in ("sip", "sips"):
        return AbsoluteUri(lower, rest)
    headers = None
    if "?" in rest:
        rest, _, headers = rest.partition("?")
    user = password = None
    if "@" in rest:
        # The user part may contain ';' (RFC 4475 3.1.1.9) but not an unescaped '@'.
        userinfo, _, rest = rest.rpartition("@")
        user, sep, pw = userinfo.partition(":")
        if sep:
            password = pw
        if user == "":
            raise SipSyntaxError("empty user part")
    hostport, _, param_text = rest.partition(";")
    params = _parse_params(param_text) if param_text else ()
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise SipSyntaxError(f"unterminated IPv6 reference in {text!r}")
        host, after = hostport[: end + 1], hostport[end + 1 :]
        port_text = after[1:] if after.startswith(":") else None
        if after and port_text is None:
            raise SipSyntaxError(f"bad host in {text!r}")
    else:
        host, sep, port_text = hostport.partition(":")
        if not sep:
            port_text = None
        elif ":" in port_text:
            raise SipSyntaxError(f"IPv6 address must be enclosed in [ ] in {text!r}")
    port = None
    if port_text is not None:
        if not port_text.isdigit() or int(port_text) > 65535:
            raise SipSyntaxError(f"bad port in {text!r}")
        port = int(port_text)
    return SipUri(lower, user, password, _check_host(host), port, params, headers)


# -- quoted strings and name-addr ---------------------------------------------------


def read_quoted(text: str, start: int) -> tuple[str, int]:
    """Read the quoted string starting at ``text[start] == '"'``; return (raw inner, end index)."""
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            return text[start + 1 : i], i + 1
        i += 1
    raise SipSyntaxError("unterminated quoted string")


def unquote_string(raw: str) -> str:
    return re.sub(r"\\(.)", r"\1", raw, flags=re.S)


def quote_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _parse_header_params(text: str) -> tuple[tuple[str, str | None], ...]:
    """``;tag=x;expires=3`` with LWS tolerated around ``;`` and ``=``; quoted values allowed."""
    params = []
    i = 0
    n = len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            break
        if text[i] != ";":
            raise SipSyntaxError(f"unexpected {text[i:]!r} in parameters")
        i += 1
        while i < n and text[i] in " \t":
            i += 1
        start = i
        while i < n and text[i] not in "=; \t":
            i += 1
        name = text[start:i]
        if not is_token(name):
            raise SipSyntaxError(f"bad parameter name {name!r}")
        while i < n and text[i] in " \t":
            i += 1
        value = None
        if i < n and text[i] == "=":
            i += 1
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] == '"':
                raw, i = read_quoted(text, i)
                value = '"' + raw + '"'
            else:
                start = i
                while i < n and text[i] not in "; \t":
                    i += 1
                value = text[start:i]
                if not value:
                    raise SipSyntaxError(f"empty value for parameter {name!r}")
                if value.startswith("[") and value.endswith("]"):
                    pass  # IPv6 reference, e.g. received=[::1] (RFC 5118 4.5)
                elif not all(ch in _TOKEN_CHARS or ch in ":[]" for ch in value):
                    raise SipSyntaxError(f"bad value for parameter {name!r}")
        params.append((name, value))
    return tuple(params)


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


def parse_name_addr(text: str) -> NameAddr:
    """Parse ``"Name" <sip:u@h>;tag=1``, ``Name <sip:u@h>``, or a bare ``sip:u@h;tag=1``."""
    text = text.strip()
    if text == "*":
        return NameAddr(AbsoluteUri("*", ""), wildcard=True)
    display = None
    i = 0
    if text.startswith('"'):
        raw, i = read_quoted(text, 0)
        display = unquote_string(raw)
        while i < len(text) and text[i] in " \t":
            i += 1
        if i >= len(text) or text[i] != "<":
            raise SipSyntaxError("quoted display name not followed by <uri>")
    lt = text.find("<", i)
    if lt >= 0:
        if display is None:
            token_part = text[:lt].strip()
            if token_part:
                words = token_part.split()
                if not all(is_token(w) for w in words):
                    raise SipSyntaxError(f"bad display name {token_part!r}")
                display = " ".join(words)
        gt = text.find(">", lt)
        if gt < 0:
            raise SipSyntaxError("unterminated <uri>")
        uri = parse_uri(text[lt + 1 : gt])
        params = _parse_header_params(text[gt + 1 :])
        return NameAddr(uri, display, params)
    # addr-spec: URI parameters cannot be told from header parameters, so per RFC 3261
    # 20.10 everything after the first ';' is a header parameter.
    uri_text, sep, rest = text.partition(";")
    uri = parse_uri(uri_text.strip())
    if isinstance(uri, SipUri) and uri.headers is not None:
        raise SipSyntaxError("URI with headers must be enclosed in <>")
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
    def host_no_brackets(self) -> str:
        return self.host[1:-1] if self.host.startswith("[") else self.host

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.protocol}/{self.transport} {self.host}{port}{_format_params(self.params)}"


_VIA_RE = re.compile(
    r"^\s*([A-Za-z0-9.\-!%*_+`'~]+)\s*/\s*([0-9.]+)\s*/\s*([A-Za-z0-9.\-!%*_+`'~]+)\s+(.*)$", re.S
)


def parse_via(text: str) -> Via:
    match = _VIA_RE.match(text)
    if not match:
        raise SipSyntaxError(f"bad Via {text!r}")
    name, version, transport, rest = match.groups()
    rest = rest.strip()
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise SipSyntaxError(f"bad Via host {text!r}")
        host, rest = rest[: end + 1], rest[end + 1 :]
    else:
        m = re.match(r"[^\s:;]+", rest)
        if not m:
            raise SipSyntaxError(f"bad Via host {text!r}")
        host, rest = m.group(0), rest[m.end() :]
    _check_host(host)
    rest = rest.lstrip()
    port = None
    if rest.startswith(":"):
        m = re.match(r":\s*(\d+)", rest)
        if not m or int(m.group(1)) > 65535:
            raise SipSyntaxError(f"bad Via port {text!r}")
        port = int(m.group(1))
        rest = rest[m.end() :]
    params = _parse_header_params(rest)
    for key, value in params:
        if key.lower() == "branch" and value is None:
            raise SipSyntaxError("branch without value")
    return Via(transport.upper(), host, port, params, f"{name.upper()}/{version}")


def parse_cseq(text: str) -> tuple[int, str]:
    parts = text.split()
    if len(parts) != 2 or not parts[0].isdigit() or not is_token(parts[1]):
        raise SipSyntaxError(f"bad CSeq {text!r}")
    number = int(parts[0])
    if number > 2**31 - 1:
        raise SipSyntaxError(f"CSeq number {parts[0]} out of range (RFC 3261 8.1.1.5)")
    return number, parts[1]
