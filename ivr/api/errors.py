"""API errors, API-key authentication and token-bucket rate limits (all clock-injected)."""
from __future__ import annotations

import hmac
import json
import math


class ApiError(Exception):
    """A request we answer with ``{"error": {"code", "message"}}`` and a 4xx status."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> bytes:
        return json.dumps({"error": {"code": self.code, "message": self.message}}).encode()


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; refilled lazily from ``clock``."""

    def __init__(self, rate: float, burst: float, clock) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self.clock = clock
        self.tokens = float(burst)
        self.stamp = clock.seconds()

    def take(self, n: float = 1.0) -> float:
        """0.0 if allowed (tokens taken), else seconds until it would be."""
        now = self.clock.seconds()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= n:
            self.tokens -= n
            return 0.0
        return (n - self.tokens) / self.rate if self.rate > 0 else math.inf


class RateLimiter:
    """One bucket per key (API key or visitor IP), created on first use.

    ``share``: in a farm, an :class:`ivr.store.rate_buckets.FarmShare` -- each bucket then
    holds this node's share of the limit (``rate / N`` up to ``burst / N`` for N live
    nodes), so the farm together never admits more than the limit."""

    def __init__(self, rate: float, burst: float, clock, max_keys: int = 100_000,
                 share=None) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.max_keys = max_keys
        self.share = share
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, key: str, rate: float | None = None, burst: float | None = None) -> None:
        rate, burst = rate or self.rate, burst or self.burst
        if self.share is not None:
            rate, burst = self.share.limits(rate, burst)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._prune()
            bucket = self._buckets[key] = TokenBucket(rate, burst, self.clock)
        elif self.share is not None and (bucket.rate, bucket.burst) != (rate, burst):
            bucket.take(0.0)                      # refilled at the old share until now
            bucket.rate, bucket.burst = float(rate), float(burst)
            bucket.tokens = min(bucket.tokens, bucket.burst)
        wait = bucket.take()
        if wait:
            retry = max(1, math.ceil(wait)) if math.isfinite(wait) else 3600
            raise ApiError(429, "rate_limited", f"too many requests; retry in {retry}s",
                           {"Retry-After": str(retry)})

    def _prune(self) -> None:
        """Forget full buckets (they behave exactly like new ones)."""
        now = self.clock.seconds()
        for key in [k for k, b in self._buckets.items()
                    if b.tokens + (now - b.stamp) * b.rate >= b.burst]:
            del self._buckets[key]


INVALID_KEY = "invalid API key"


class KeyRing:
    """API keys: ``{key: {"name": ..., "rate": per-second, "burst": n}}``."""

    def __init__(self, keys: dict[str, dict]) -> None:
        self.keys = {k: dict(v) for k, v in keys.items() if k}

    def authenticate(self, headers) -> tuple[str, dict]:
        """``headers.getRawHeaders``-style object -> (key, settings) or ApiError 401."""
        given = _first(headers, b"x-api-key")
        if given is None:
            auth = _first(headers, b"authorization")
            if auth and auth.lower().startswith("bearer "):
                given = auth[7:].strip()
        if not given:
            raise ApiError(401, "unauthorized", "missing API key (X-API-Key or Bearer)",
                           {"WWW-Authenticate": 'Bearer realm="ivr"'})
        found = None
        for key, settings in self.keys.items():   # no early exit: constant work per key
            if hmac.compare_digest(key.encode(), given.encode()):
                found = (key, settings)
        if found is None:
            raise ApiError(401, "unauthorized", INVALID_KEY,
                           {"WWW-Authenticate": 'Bearer realm="ivr"'})
        return found


def _first(headers, name: bytes) -> str | None:
    values = headers.getRawHeaders(name)
    if not values:
        return None
    try:
        return values[0].decode("latin-1") if isinstance(values[0], bytes) else values[0]
    except UnicodeDecodeError:
        return None
