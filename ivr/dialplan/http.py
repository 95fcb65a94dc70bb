"""The HTTP client the ``webhook`` verb uses: a tiny protocol, a treq implementation.

Tests inject a fake with the same ``post_json`` method; the verb applies its own timeout
(with the call's clock) by cancelling the Deferred.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from twisted.internet.defer import Deferred, inlineCallbacks


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes


class HttpClient(Protocol):
    def post_json(self, url: str, body: bytes, headers: dict[str, str]) -> Deferred:
        """POST ``body`` (JSON); fires HttpResponse, errbacks on connection errors."""
        ...


class TreqHttpClient:
    """``post_json`` over treq (which pools connections through its own Agent)."""

    def __init__(self, reactor=None, max_body: int = 1 << 20):
        self._reactor = reactor
        self.max_body = max_body
        self._http = None
        self._pool = None

    def close(self):
        """Drop pooled connections (a Deferred)."""
        from twisted.internet import defer
        return self._pool.closeCachedConnections() if self._pool else defer.succeed(None)

    def _client(self):
        if self._http is None:
            from treq.client import HTTPClient
            from twisted.web.client import Agent, HTTPConnectionPool
            if self._reactor is None:
                from twisted.internet import reactor
                self._reactor = reactor
            pool = self._pool = HTTPConnectionPool(self._reactor, persistent=True)
            self._http = HTTPClient(Agent(self._reactor, pool=pool))
        return self._http

    @inlineCallbacks
    def post_json(self, url: str, body: bytes, headers: dict[str, str]):
        hdrs = {k: [v] for k, v in headers.items()}
        hdrs.setdefault("Content-Type", ["application/json"])
        response = yield self._client().post(url, data=body, headers=hdrs)
        content = yield response.content()
        return HttpResponse(response.code, content[: self.max_body])
