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

With an outbox (``WebhookDispatcher(..., outbox=Outbox)``, PostgreSQL mode) status events
are rows in the database instead (:mod:`ivr.store.outbox`), written in the transaction of
the state change they report, and :class:`OutboxDelivery` on every node claims and sends
them: one call's events in order, at least once, each with its idempotency key (``id``,
``"{call_id}:{sequence}"``, the same on every redelivery), with the same retries.

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
from twisted.internet.task import LoopingCall

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
                 metrics=None, user_agent: str = "ivr-webhooks/1", outbox=None,
                 poll_interval: float = 0.5) -> None:
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
        #: status events through the database (PostgreSQL mode), or None (in memory)
        self.outbox = None if outbox is None else OutboxDelivery(
            outbox, self, poll_interval=poll_interval)

    # -- public -------------------------------------------------------------------

    def send(self, call_id: str, url: str | None, event: str, data: dict | None = None) -> None:
        """Queue one status event for ``call_id``.  Never raises, never blocks."""
        if not url:
            return
        seq = self._sequences.pop(call_id, 0) + 1
        if event not in FINAL_EVENTS:
            self._sequences[call_id] = seq
            while len(self._sequences) > self.max_tracked:
                self._sequences.popitem(last=False)
        if self.outbox is not None:
            self.outbox.add(call_id, seq, url, event, data or {})
            return
        q = self._queues.setdefault(call_id, _CallQueue())
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
        if self.outbox is not None:
            self.outbox.stop()
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

    def post(self, url: str, payload: dict, attempt: int) -> Deferred:
        """One signed POST of ``payload``; fires with the status code (or fails)."""
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        now = int(self.clock.seconds())
        headers = {"Content-Type": "application/json", "User-Agent": self.user_agent,
                   SIGNATURE_HEADER: sign(self.secret, now, body),
                   "X-IVR-Attempt": str(attempt)}
        return maybeDeferred(self._post, url, body, headers)

    def retry_delay(self, attempts: int) -> float:
        return self.backoff[min(attempts - 1, len(self.backoff) - 1)]

    def _attempt(self, call_id: str, delivery: Delivery) -> None:
        delivery.attempts += 1
        d = self.post(delivery.url, delivery.payload, delivery.attempts)
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
        delay = self.retry_delay(delivery.attempts)
        log.info("webhook to %s for %s failed (%s); retry in %ss", delivery.url, call_id, why, delay)
        self.clock.callLater(delay, self._attempt, call_id, delivery)

    def _finish(self, call_id: str, q: _CallQueue) -> None:
        q.pending.popleft()
        q.busy = False
        self._next(call_id)


#: Delivered and dropped outbox rows are forgotten after a day, checked every 10 minutes.
KEEP_DONE, PURGE_INTERVAL = 86400.0, 600.0


class OutboxDelivery:
    """Sends the outbox's events from this node: claims deliverable rows (every
    ``poll_interval`` seconds, and at once after this node wrote one or finished one),
    POSTs each through the dispatcher (signature, retries, metrics as in memory), and
    records the outcome.  Another node's rows are taken when their lease runs out."""

    def __init__(self, outbox, dispatcher: WebhookDispatcher, *,
                 poll_interval: float = 0.5, batch: int = 50) -> None:
        self.outbox, self.dispatcher = outbox, dispatcher
        self.clock = dispatcher.clock
        self.batch = batch
        self._claiming = False
        self._again = False
        self._in_flight = 0
        self._loop = LoopingCall(self.poll)
        self._loop.clock = self.clock
        self._poll_interval = poll_interval
        self._problem_logged = False
        self._next_purge = self.clock.seconds() + PURGE_INTERVAL

    def start(self) -> None:
        if not self._loop.running:
            self._loop.start(self._poll_interval, now=True).addErrback(
                lambda f: log.error("webhook outbox poll stopped: %s", f.getErrorMessage()))

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def add(self, key: str, seq: int, url: str, event: str, data: dict) -> Deferred:
        """Event ``seq`` of ``key`` without a state row of its own (call events); sent
        once committed."""
        d = self.outbox.add(key, seq, url, event, data, self.clock.seconds())

        def written(payload: dict) -> dict:
            self.poll()
            return payload
        return d.addCallbacks(written,
                              lambda f: self._store_problem(f, f"webhook {event} for {key}"))

    def idle(self) -> bool:
        return self._in_flight == 0 and not self._claiming

    def poll(self) -> Deferred:
        """Claim what is due and send it; fires (with None) when the claim is done."""
        now = self.clock.seconds()
        if now >= self._next_purge:   # delivered and dropped rows are kept a day
            self._next_purge = now + PURGE_INTERVAL
            self.outbox.purge(now - KEEP_DONE).addErrback(
                lambda f: self._store_problem(f, "purging the outbox"))
        if self._claiming:
            self._again = True
            return succeed(None)
        self._claiming = True
        d = self.outbox.claim(self.clock.seconds(), self.batch)

        def claimed(items) -> None:
            self._problem_logged = False
            for item in items:
                self._send(item)

        def done(_) -> None:
            self._claiming = False
            if self._again:
                self._again = False
                self.poll()
        d.addCallbacks(claimed, lambda f: self._store_problem(f, "claiming webhooks"))
        return d.addBoth(done)

    def _send(self, item) -> None:
        attempt = item.attempts + 1
        self._in_flight += 1
        d = self.dispatcher.post(item.url, item.payload, attempt)
        d.addCallbacks(lambda code: self._outcome(item, attempt, code, None),
                       lambda f: self._outcome(item, attempt, None, f))

    def _outcome(self, item, attempt: int, code, failure) -> None:
        now = self.clock.seconds()
        dispatcher = self.dispatcher
        if code is not None and 200 <= int(code) < 300:
            dispatcher.delivered += 1
            d = self.outbox.delivered(item, now)
        else:
            why = f"HTTP {code}" if code is not None else failure.getErrorMessage()
            if attempt >= dispatcher.max_attempts:
                log.warning("webhook to %s for %s dropped after %d attempts: %s",
                            item.url, item.key, attempt, why)
                if dispatcher.metrics is not None:
                    dispatcher.metrics.webhook_failed()
                d = self.outbox.drop(item, attempt)
            else:
                delay = dispatcher.retry_delay(attempt)
                log.info("webhook to %s for %s failed (%s); retry in %ss", item.url,
                         item.key, why, delay)
                d = self.outbox.retry(item, attempt, now + delay)
                d.addCallback(lambda _: self.clock.callLater(delay, self.poll))

        def finished(_) -> None:
            self._in_flight -= 1
            self.poll()   # the key's next event may go now
        d.addErrback(self._store_problem, f"webhook {item.payload.get('id')}")
        d.addBoth(finished)

    def _store_problem(self, failure, what: str) -> None:
        """The database refused or is away: the rows stay and are claimed again later
        (their lease runs out), so nothing is lost.  A database outage is the store's to log
        (once, when it starts); any other problem is logged once until a claim succeeds."""
        if getattr(failure.value, "outage", False):
            return None
        if not self._problem_logged:
            self._problem_logged = True
            log.warning("webhook outbox: %s failed: %s", what, failure.getErrorMessage())
        return None
