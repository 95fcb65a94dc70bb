"""Webhook signatures: ``X-IVR-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
f"{t}.{body}")>`` over the exact body bytes, for status webhooks and the dialplan's
``webhook`` verb alike.  Pure: no clock (the caller passes the time), no I/O."""
from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-IVR-Signature"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, str(int(timestamp)).encode() + b"." + body, hashlib.sha256)
    return f"t={int(timestamp)},v1={mac.hexdigest()}"


def verify(secret: bytes, header: str, body: bytes, now: float, tolerance: float = 300.0) -> bool:
    """True if ``header`` is a valid signature of ``body`` made within ``tolerance`` s."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (ValueError, KeyError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)
