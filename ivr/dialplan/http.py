"""The HTTP client the ``webhook`` verb uses: a tiny protocol, a signed implementation.

Tests inject a fake with the same ``post_json`` method; the verb applies its own timeout
(with the call's clock) by cancelling the Deferred.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from twisted.internet.defer import Deferred


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes


class HttpClient(Protocol):
    def post_json(self, url: str, body: bytes, headers: dict[str, str]) -> Deferred:
        """POST ``body`` (JSON); fires HttpResponse, errbacks on connection errors."""
        ...


class WebhookHttpClient:
    """``post_json`` for flow webhooks, over the same transport as status webhooks.

    With a ``secret`` every request is signed exactly like a status webhook: an
    ``X-IVR-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>``
    header over the exact body bytes (``ivr.api.webhooks.verify`` checks it).  Connections
    are pooled; a request that meets a pooled connection the receiver has closed meanwhile
    is sent again at once on a fresh one, so the verb sees one attempt, not a failure.
    """

    def __init__(self, reactor=None, max_body: int = 1 << 20, secret: bytes | str | None = None,
                 user_agent: str = "ivr-webhooks/1"):
        from ivr.httpclient.webhook_http import WebhookHttp
        self.max_body = max_body
        self.secret = secret.encode() if isinstance(secret, str) else secret
        self.user_agent = user_agent
        self._http = WebhookHttp(reactor, max_body=max_body)

    @property
    def resent(self) -> int:
        return self._http.resent

    def close(self):
        """Drop pooled connections (a Deferred)."""
        return self._http.close()

    def post_json(self, url: str, body: bytes, headers: dict[str, str]) -> Deferred:
        from ivr.httpclient.signing import SIGNATURE_HEADER, sign
        hdrs = {"Content-Type": "application/json", "User-Agent": self.user_agent, **headers}
        if self.secret:
            hdrs[SIGNATURE_HEADER] = sign(self.secret, int(self._http.reactor.seconds()), body)
        d = self._http.post(url, body, hdrs)
        return d.addCallback(lambda reply: HttpResponse(reply.status, reply.body))


#: Another name for :class:`WebhookHttpClient`, which the dialplan service and the runner use.
TreqHttpClient = WebhookHttpClient
