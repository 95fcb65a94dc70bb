"""Status webhooks: signed, ordered per call, retried with backoff, never blocking.

Each call (or click-to-call session) has its own FIFO queue with at most one request in
flight, so a receiver sees one call's events in the order they happened even when an
earlier delivery needed retries.  Different calls never wait for each other.

Signature header (verify it on the receiving side)::

    X-IVR-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>

``body`` is the exact request body bytes.  Receivers recompute the HMAC over
``str(t).encode() + b"." + body``, compare with :func:`hmac.compare_digest`, and reject
timestamps more than a few minutes old (:func:`ivr.httpclient.signing.verify` does all
three).  The dialplan ``webhook`` verb's requests carry the same header, made the same way
with the same secret.

The transport (:mod:`ivr.httpclient.webhook_http`) keeps connections alive; a delivery that meets a
pooled connection the receiver has closed meanwhile is sent again at once on a fresh one and
does not count as a failed attempt.
"""
from __future__ import annotations

import json
import logging
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Callable

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTCP

from ..httpclient.signing import SIGNATURE_HEADER, sign
from ..httpclient.webhook_http import WebhookHttp

log = logging.getLogger(__name__)

#: Seconds to wait before attempt 2, 3, ... (attempt 1 is immediate).
DEFAULT_BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0)

#: Events after which a call's sequence counter is forgotten.
FINAL_EVENTS = frozenset({"completed", "failed"})

Post = Callable[[str, bytes, dict], Deferred]   # -> fires with the HTTP status code


def http_post(http: WebhookHttp, timeout: float = 10.0) -> Post:
    """The real transport: POST over ``http``, fires with the status code."""
    def post(url: str, body: bytes, headers: dict) -> Deferred:
        d = http.post(url, body, headers)
        d.addTimeout(timeout, http.reactor)
        return d.addCallback(lambda reply: reply.status)
    return post


@dataclass
class Delivery:
    url: str
    payload: dict
    attempts: int = 0


@dataclass
class _CallQueue:
    pending: deque = field(default_factory=deque)
    busy: bool = False


class WebhookDispatcher:
    """``send(call_id, url, event, data)`` queues a signed POST and returns at once."""

    def __init__(self, secret: bytes | str, clock, post: Post | None = None, *,
                 backoff: tuple[float, ...] = DEFAULT_BACKOFF, max_attempts: int = 6,
                 metrics=None, user_agent: str = "ivr-webhooks/1") -> None:
        self.secret = secret.encode() if isinstance(secret, str) else secret
        self.clock = clock
        self._http: WebhookHttp | None = None
        if post is None:
            self._http = WebhookHttp(clock if IReactorTCP.providedBy(clock) else None)
            post = http_post(self._http)
        self._post = post
        self.backoff = backoff
        self.max_attempts = max_attempts
        self.metrics = metrics
        self.user_agent = user_agent
        self._queues: dict[str, _CallQueue] = {}
        #: per-call event counter, kept until the call's final event
        self._sequences: OrderedDict[str, int] = OrderedDict()
        self.max_tracked = 100_000
        self.delivered = 0
        self.dropped: list[Delivery] = []

    # -- public -------------------------------------------------------------------

    def send(self, call_id: str, url: str | None, event: str, data: dict | None = None) -> None:
        """Queue one status event for ``call_id``.  Never raises, never blocks."""
        if not url:
            return
        q = self._queues.setdefault(call_id, _CallQueue())
        seq = self._sequences.pop(call_id, 0) + 1
        if event not in FINAL_EVENTS:
            self._sequences[call_id] = seq
            while len(self._sequences) > self.max_tracked:
                self._sequences.popitem(last=False)
        payload = {"id": uuid.uuid4().hex, "call_id": call_id, "event": event,
                   "sequence": seq, "timestamp": self.clock.seconds(),
                   "data": data or {}}
        q.pending.append(Delivery(url, payload))
        if not q.busy:
            self._next(call_id)

    def notify(self, url: str, payload: dict[str, Any], key: str | None = None) -> None:
        """For dialplans' ``webhook`` verb: POST an arbitrary JSON object, signed,
        ordered with other events of ``key`` (a call id), with the same retries."""
        key = key or f"adhoc-{uuid.uuid4().hex}"
        q = self._queues.setdefault(key, _CallQueue())
        q.pending.append(Delivery(url, dict(payload)))
        if not q.busy:
            self._next(key)

    def pending(self, call_id: str) -> int:
        q = self._queues.get(call_id)
        return 0 if q is None else len(q.pending)   # the in-flight one is pending[0]

    def idle(self) -> bool:
        return not self._queues

    def close(self) -> Deferred:
        """Drop the transport's pooled connections (a Deferred)."""
        return self._http.close() if self._http is not None else succeed(None)

    # -- delivery -------------------------------------------------------------------

    def _next(self, call_id: str) -> None:
        q = self._queues.get(call_id)
        if q is None:
            return
        if not q.pending:
            del self._queues[call_id]
            return
        q.busy = True
        self._attempt(call_id, q.pending[0])

    def _attempt(self, call_id: str, delivery: Delivery) -> None:
        delivery.attempts += 1
        body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
        now = int(self.clock.seconds())
        headers = {"Content-Type": "application/json", "User-Agent": self.user_agent,
                   SIGNATURE_HEADER: sign(self.secret, now, body),
                   "X-IVR-Attempt": str(delivery.attempts)}
        d = maybeDeferred(self._post, delivery.url, body, headers)
        d.addCallbacks(lambda code: self._done(call_id, delivery, code, None),
                       lambda f: self._done(call_id, delivery, None, f))

    def _done(self, call_id: str, delivery: Delivery, code: int | None, failure) -> None:
        q = self._queues[call_id]
        if code is not None and 200 <= int(code) < 300:
            self.delivered += 1
            return self._finish(call_id, q)
        why = f"HTTP {code}" if code is not None else failure.getErrorMessage()
        if delivery.attempts >= self.max_attempts:
            log.warning("webhook to %s for %s dropped after %d attempts: %s",
                        delivery.url, call_id, delivery.attempts, why)
            self.dropped.append(delivery)
            if self.metrics is not None:
                self.metrics.webhook_failed()
            return self._finish(call_id, q)
        delay = self.backoff[min(delivery.attempts - 1, len(self.backoff) - 1)]
        log.info("webhook to %s for %s failed (%s); retry in %ss", delivery.url, call_id, why, delay)
        self.clock.callLater(delay, self._attempt, call_id, delivery)

    def _finish(self, call_id: str, q: _CallQueue) -> None:
        q.pending.popleft()
        q.busy = False
        self._next(call_id)
