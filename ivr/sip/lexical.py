"""The RFC 3261 25.1 basic rules the SIP grammar is built from: tokens, digits, hosts
(IPv4, IPv6 references per RFC 5118), ports, quoted strings and ``;name=value``
parameters, with :class:`SipSyntaxError` for anything that does not follow them.

:mod:`ivr.sip.uri` builds URIs, name-addrs and Via on these rules (and re-exports them).
Pure: no I/O.
"""
from __future__ import annotations

import ipaddress
import re


class SipSyntaxError(ValueError):
    """The peer sent something that does not follow the SIP grammar."""


_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
_HOSTNAME_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_IPV4_RE = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
_DIGITS_RE = re.compile(r"[0-9]+")
#: token (RFC 3261 25.1) as a regex: _TOKEN_CHARS, one or more.
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
#: A header parameter's token value, which may also hold ':' (IPv6 in received=).
_PARAM_VALUE_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~:]+")


def is_token(text: str) -> bool:
    return _TOKEN_RE.fullmatch(text) is not None


def is_digits(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` also accepts '²' and other Unicode digits)."""
    return _DIGITS_RE.fullmatch(text) is not None


def _ipv6(inner: str) -> bool:
    try:
        ipaddress.IPv6Address(inner)
        return True
    except ValueError:
        pass
    # RFC 5118 4.10: tolerate the RFC 3261 ABNF bug that allows "2001:db8:::192.0.2.1".
    if ":::" in inner and inner.count(":::") == 1 and "::" not in inner.replace(":::", ""):
        try:
            ipaddress.IPv6Address(inner.replace(":::", "::"))
            return True
        except ValueError:
            return False
    return False


def is_ip_address(text: str) -> bool:
    """IPv4, IPv6 or an IPv6 reference ``[...]`` (received= per RFC 5118 4.5)."""
    if text.startswith("[") and text.endswith("]"):
        return _ipv6(text[1:-1])
    if _IPV4_RE.fullmatch(text):
        return all(int(part) <= 255 for part in text.split("."))
    return ":" in text and _ipv6(text)


def _check_host(host: str) -> str:
    if host.startswith("["):
        if not host.endswith("]") or not _ipv6(host[1:-1]):
            raise SipSyntaxError(f"bad IPv6 reference {host!r}")
        return host
    if _IPV4_RE.fullmatch(host):
        if any(int(part) > 255 for part in host.split(".")):
            raise SipSyntaxError(f"bad IPv4 address {host!r}")
        return host
    if ":" in host:
        raise SipSyntaxError(f"IPv6 address {host!r} must be enclosed in [ ] (RFC 5118 4.2)")
    if not _HOSTNAME_RE.fullmatch(host):
        raise SipSyntaxError(f"bad host {host!r}")
    return host


def _parse_port(text: str, context: str) -> int:
    if not is_digits(text) or int(text) > 65535:
        raise SipSyntaxError(f"bad port in {context!r}")
    return int(text)


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


def read_quoted(text: str, start: int) -> tuple[str, int]:
    """Read the quoted string starting at ``text[start] == '"'``; return (raw inner, end index)."""
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 >= len(text) or text[i + 1] in "\r\n":
                raise SipSyntaxError("bad quoted-pair")
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


def _skip_lws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def _parse_header_params(text: str) -> tuple[tuple[str, str | None], ...]:
    """``;tag=x;expires=3`` with LWS tolerated around ``;`` and ``=``; quoted values allowed."""
    if text[:1] == ";" and " " not in text and "\t" not in text and '"' not in text:
        # No LWS and no quoted string (nearly every header): split instead of scanning
        # character by character.  The same checks; anything they refuse is parsed
        # again below, which raises with its exact complaint.
        fast = []
        for part in text[1:].split(";"):
            name, sep, value = part.partition("=")
            if not is_token(name):
                break
            if not sep:
                fast.append((name, None))
                continue
            if not value:
                break
            if value[:1] == "[" and value[-1:] == "]":
                if not _ipv6(value[1:-1]):
                    break
            elif _PARAM_VALUE_RE.fullmatch(value) is None:
                break
            fast.append((name, value))
        else:
            return tuple(fast)
    return _scan_header_params(text)


def _scan_header_params(text: str) -> tuple[tuple[str, str | None], ...]:
    """The general case of :func:`_parse_header_params`, one character at a time."""
    params = []
    i = 0
    n = len(text)
    while True:
        i = _skip_lws(text, i)
        if i >= n:
            break
        if text[i] != ";":
            raise SipSyntaxError(f"unexpected {text[i:]!r} in parameters")
        i = _skip_lws(text, i + 1)
        start = i
        while i < n and text[i] not in "=; \t":
            i += 1
        name = text[start:i]
        if not is_token(name):
            raise SipSyntaxError(f"bad parameter name {name!r}")
        i = _skip_lws(text, i)
        value = None
        if i < n and text[i] == "=":
            i = _skip_lws(text, i + 1)
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
                    if not _ipv6(value[1:-1]):  # IPv6 reference (RFC 5118 4.5)
                        raise SipSyntaxError(f"bad IPv6 reference in parameter {name!r}")
                elif _PARAM_VALUE_RE.fullmatch(value) is None:
                    raise SipSyntaxError(f"bad value for parameter {name!r}")
        params.append((name, value))
    return tuple(params)
