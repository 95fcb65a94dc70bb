"""The HTTP transport of every webhook: status webhooks and the dialplan ``webhook`` verb.

Connections are kept alive in one pool per client.  A receiver may close a kept-alive
connection whenever it likes (after every response, or when its idle timer runs out) and the
client only finds out when it next writes on it.  Twisted's pool re-sends a request after
that only for bodiless idempotent methods, so every webhook POST that happened to go out on
such a connection failed and waited for its caller's backoff.

Here a request that dies on a *reused* connection before any byte of a response came back
(``RequestNotSent``, ``RequestTransmissionFailed``, ``ResponseNeverReceived``, not a
cancellation) is sent again at once, once, on a fresh connection; the caller sees one
attempt.  A failure on a fresh connection is a real failure and goes to the caller's retry
policy.  A receiver that read the request and then closed without answering can see it
twice: status webhooks carry an ``id`` to drop duplicates by.

Response bodies are read up to ``max_body`` bytes (the rest is discarded, never buffered);
callers bound the whole exchange by cancelling the Deferred (``addTimeout``).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

from twisted.internet.defer import CancelledError, Deferred, maybeDeferred, succeed
from twisted.internet.protocol import Protocol
from twisted.web.client import (Agent, HTTPConnectionPool, RequestNotSent,
                                RequestTransmissionFailed, ResponseDone, ResponseNeverReceived)
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

_UNANSWERED = (RequestNotSent, RequestTransmissionFailed, ResponseNeverReceived)


@dataclass(frozen=True)
class HttpReply:
    status: int
    body: bytes


@implementer(IBodyProducer)
class BytesBody:
    """A request body that can be sent more than once (``FileBodyProducer`` cannot)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.length = len(body)

    def startProducing(self, consumer):
        consumer.write(self.body)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


def died_unanswered(failure) -> bool:
    """True if a request failed before any response came back, and not by cancellation."""
    if not failure.check(*_UNANSWERED):
        return False
    return not any(r.check(CancelledError) for r in getattr(failure.value, "reasons", ()))


class _ResendOnFresh:
    """A connection taken from the pool: if it turns out dead, send once more on a new one."""

    def __init__(self, connection, fresh, on_resend) -> None:
        self._connection = connection
        self._fresh = fresh
        self._on_resend = on_resend

    def request(self, request):
        def failed(failure):
            body = request.bodyProducer
            if not died_unanswered(failure) or not (body is None or isinstance(body, BytesBody)):
                return failure
            self._on_resend()
            return self._fresh().addCallback(lambda connection: connection.request(request))
        return self._connection.request(request).addErrback(failed)

    def __getattr__(self, name):
        return getattr(self._connection, name)


class ResendingPool(HTTPConnectionPool):
    """A persistent pool whose reused connections re-send on a fresh one when found dead."""

    retryAutomatically = False   # Twisted's retry skips POSTs; _ResendOnFresh covers them

    def __init__(self, reactor, persistent: bool = True) -> None:
        super().__init__(reactor, persistent)
        self._served: weakref.WeakSet = weakref.WeakSet()   # connections handed out before
        self.resent = 0

    def getConnection(self, key, endpoint):
        def handed_out(connection):
            if connection in self._served:
                return _ResendOnFresh(connection, lambda: self._fresh(key, endpoint),
                                      self._count_resend)
            self._served.add(connection)
            return connection
        return super().getConnection(key, endpoint).addCallback(handed_out)

    def _fresh(self, key, endpoint):
        def mark(connection):
            self._served.add(connection)
            return connection
        return self._newConnection(key, endpoint).addCallback(mark)

    def _count_resend(self) -> None:
        self.resent += 1


class _CappedBody(Protocol):
    def __init__(self, limit: int, done: Deferred) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.done = done

    def dataReceived(self, data: bytes) -> None:
        room = self.limit - self.size
        if room > 0:
            part = data[:room]
            self.parts.append(part)
            self.size += len(part)

    def connectionLost(self, reason) -> None:
        if self.done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.parts))
        else:
            self.done.errback(reason)


def read_capped(response, limit: int) -> Deferred:
    """The response body, at most ``limit`` bytes of it; cancelling drops the connection."""
    def cancel(_d):
        abort = getattr(protocol.transport, "abortConnection", None)
        if abort is not None:
            abort()
    done: Deferred = Deferred(cancel)
    protocol = _CappedBody(limit, done)
    response.deliverBody(protocol)
    return done


class WebhookHttp:
    """``post(url, body, headers)`` fires with an :class:`HttpReply`."""

    def __init__(self, reactor=None, *, max_body: int = 1 << 20,
                 connect_timeout: float = 10.0) -> None:
        self._reactor = reactor
        self.max_body = max_body
        self.connect_timeout = connect_timeout
        self._pool: ResendingPool | None = None
        self._agent: Agent | None = None

    @property
    def reactor(self):
        if self._reactor is None:
            from twisted.internet import reactor
            self._reactor = reactor
        return self._reactor

    @property
    def resent(self) -> int:
        """Requests sent again on a fresh connection after a reused one was found dead."""
        return self._pool.resent if self._pool is not None else 0

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Deferred:
        """Never raises: a bad URL or header fails the Deferred."""
        return maybeDeferred(self._post, url, body, headers)

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> Deferred:
        if self._agent is None:
            self._pool = ResendingPool(self.reactor)
            self._agent = Agent(self.reactor, connectTimeout=self.connect_timeout,
                                pool=self._pool)
        hdrs = Headers({k: [v] for k, v in headers.items()})
        d = self._agent.request(b"POST", url.encode("utf-8"), hdrs, BytesBody(body))
        d.addCallback(lambda response: read_capped(response, self.max_body).addCallback(
            lambda content: HttpReply(response.code, content)))
        return d

    def close(self) -> Deferred:
        """Drop pooled connections."""
        return self._pool.closeCachedConnections() if self._pool else succeed(None)
