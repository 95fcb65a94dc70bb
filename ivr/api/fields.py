"""The fields of a JSON request body: parsed once (UTF-8, RFC 8259, the nesting cap of
:mod:`ivr.api.limits`) and checked one by one, each mistake a 400 naming the field."""
from __future__ import annotations

import re
from typing import Any

from .errors import ApiError
from .limits import parse_json_value


def visitor_address(request, trust_forwarded_for: bool = False) -> str:
    """The client's address: the connection's, or the first X-Forwarded-For entry when the
    API sits behind a proxy the config trusts (``trust_forwarded_for``)."""
    if trust_forwarded_for:
        fwd = request.getHeader(b"x-forwarded-for")
        if fwd:
            return fwd.decode("latin-1").split(",")[0].strip()
    addr = request.getClientAddress()
    return getattr(addr, "host", None) or "unknown"


def json_body(request) -> dict:
    return parse_json(request.content.read() if request.content is not None else b"")


def parse_json(raw: bytes) -> dict:
    if not raw.strip():
        raise ApiError(400, "invalid_json", "a JSON object body is required")
    body = parse_json_value(raw)   # UTF-8, RFC 8259, nesting depth (ivr/api/limits.py)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return body


def need(body: dict, name: str) -> Any:
    if body.get(name) in (None, ""):
        raise ApiError(400, "missing_field", f"'{name}' is required")
    return body[name]


def opt_number(body: dict, name: str, lo: float, hi: float, default=None):
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise ApiError(400, "invalid_field", f"'{name}' must be a number from {lo} to {hi}")
    return float(value)


def opt_str(body: dict, name: str, max_len: int = 2000) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise ApiError(400, "invalid_field", f"'{name}' must be a string (max {max_len})")
    return value


def opt_bool(body: dict, name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise ApiError(400, "invalid_field", f"'{name}' must be true or false")
    return value


def opt_url(body: dict, name: str) -> str | None:
    url = opt_str(body, name)
    if url is not None and not re.match(r"https?://[^\s/]+", url):
        raise ApiError(400, "invalid_field", f"'{name}' must be an http(s) URL")
    return url
