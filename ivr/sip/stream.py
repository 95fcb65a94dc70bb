"""One SIP stream connection (TCP, or TLS under Twisted's ``TLSMemoryBIOProtocol``) and
the factories that make them, for :class:`.transport.SipTransport`, which owns them:
the stream framing, idle timer, per-message deadline, the TLS handshake's deadline and,
for an outbound TLS connection that never came up, which requests it was carrying.
"""
from __future__ import annotations

from twisted.internet import protocol
from twisted.internet.interfaces import IHandshakeListener
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from .message import FramingError, Request, Response, SipParseError, StreamParser
from .tls import describe_failure

log = Logger(namespace="ivr.sip.transport")


@implementer(IHandshakeListener)
class StreamConnection(protocol.Protocol):
    """One SIP/TCP connection, or the SIP side of a SIP/TLS one (``kind == "TLS"``, under
    Twisted's ``TLSMemoryBIOProtocol``, which tells it when the handshake is done)."""

    def __init__(self, owner, pending: list | None = None,
                 kind: str = "TCP") -> None:
        self.owner = owner
        self.kind = kind
        self.parser = StreamParser()
        self.pending = pending  # [(data, request or None)] queued while connecting
        self.peer: tuple[str, int] = ("", 0)
        self.closing = False  # loseConnection called: read nothing more, send nothing more
        self.on_close: list = []  # Deferreds fired by connectionLost
        self._idle = None
        self._deadline = None  # running while a message is part-way in
        # TLS: requests written before the handshake finished (failed with it), and the
        # deadline for the handshake itself.
        self.handshake_done = kind != "TLS"
        self.unconfirmed: list[Request] = []
        self._handshake_timer = None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.kind, self.peer[0], self.peer[1])

    @property
    def in_message(self) -> bool:
        """Part of a message has arrived and the rest has not."""
        return self.parser.buffered > 0 or self.parser.waiting_for_body

    def connectionMade(self):
        peer = self.transport.getPeer()
        self.peer = (peer.host, peer.port)
        self.owner.register_connection(self)
        for data, request in self.pending or ():
            self.write(data, request)
        self.pending = None
        self._touch()
        timeout = self.owner.tcp_limits.message_timeout
        if not self.handshake_done and timeout:
            self._handshake_timer = self.owner.reactor.callLater(timeout, self._handshake_slow)

    def handshakeCompleted(self):
        self.handshake_done = True
        self.unconfirmed = []
        if self._handshake_timer is not None and self._handshake_timer.active():
            self._handshake_timer.cancel()

    def _handshake_slow(self):
        self.owner.limit_log.note(
            "handshake", "{n} SIP/TLS connection(s) closed for a handshake not done in time",
            "closing SIP/TLS connection with {peer}: no TLS handshake {s:g} s after it "
            "opened", peer=self.peer[0], s=self.owner.tcp_limits.message_timeout)
        self.abort()

    def write(self, data: bytes, request: Request | None = None) -> None:
        if not self.handshake_done and request is not None:
            self.unconfirmed.append(request)
        self.transport.write(data)
        self._touch()  # traffic either way keeps the connection

    def close(self) -> None:
        self.closing = True
        self.transport.loseConnection()

    def abort(self) -> None:
        """Close now, without waiting to flush what the peer has not read: a limit
        closes a connection to free its descriptor, which a peer that stopped reading
        would otherwise hold."""
        self.closing = True
        self.transport.abortConnection()

    def _touch(self):
        if self._idle is not None and self._idle.active():
            self._idle.reset(self.owner.idle_timeout)
        else:
            self._idle = self.owner.reactor.callLater(self.owner.idle_timeout, self._expire)
        self.owner.connection_active(self)

    def _follow_deadline(self, finished_one: bool) -> None:
        """Start the message deadline at a message's first byte, restart it when one
        message ended and the next began in the same read, stop it between messages."""
        timeout = self.owner.tcp_limits.message_timeout
        running = self._deadline is not None and self._deadline.active()
        if not self.in_message:
            if running:
                self._deadline.cancel()
        elif not running:
            self._deadline = self.owner.reactor.callLater(timeout, self._too_slow)
        elif finished_one:
            self._deadline.reset(timeout)

    def _too_slow(self):
        self.owner.limit_log.note(
            "deadline", "{n} SIP/TCP connection(s) closed for a message not completed in time",
            "closing SIP/TCP connection from {peer}: a message still incomplete {s:g} s after "
            "its first byte ({b} bytes so far)", peer=self.peer[0],
            s=self.owner.tcp_limits.message_timeout, b=self.parser.buffered)
        self.abort()

    def _expire(self):
        log.info("closing idle SIP/TCP connection from {peer}", peer=self.peer)
        self.close()

    def dataReceived(self, data):
        if self.closing:
            return  # after a framing error the stream cannot be resynchronised
        self._touch()
        source = self.owner.stream_source(self)
        try:
            items = self.parser.feed(data)
        except FramingError as exc:
            for message in getattr(exc, "messages", ()) or ():
                if isinstance(message, (Request, Response)):
                    self.owner.dispatch(message, source)
            self.owner._answer_parse_error(exc, source)
            self.close()
            return
        except Exception:
            log.failure("stream parser crashed; closing {peer}", peer=self.peer)
            self.close()
            return
        if self.owner.tcp_limits.message_timeout:
            self._follow_deadline(finished_one=bool(items))
        for item in items:
            if self.closing:
                return
            if item == "ping":
                self.transport.write(b"\r\n")
            elif isinstance(item, SipParseError):
                self.owner._answer_parse_error(item, source)
            else:
                self.owner.dispatch(item, source)

    def connectionLost(self, reason=protocol.connectionDone):
        self.closing = True
        for timer in (self._idle, self._deadline, self._handshake_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self.owner.forget_connection(self)
        if not self.handshake_done and getattr(self, "factory", None) is not None \
                and self.factory.key is not None:  # our outbound TLS never came up
            self.owner.tls_failed(self.unconfirmed, self.peer[0], self.peer[1],
                                  describe_failure(reason))
        self.unconfirmed = []
        waiting, self.on_close = self.on_close, []
        for deferred in waiting:
            deferred.callback(None)


class StreamFactory(protocol.ClientFactory):
    """The listener's factory, and (with ``pending``) one outgoing connection's: data
    queued while the connection is being made is written once it is up."""

    noisy = False

    def __init__(self, owner, key: tuple[str, str, int] | None = None,
                 kind: str = "TCP") -> None:
        self.owner = owner
        self.pending: list | None = [] if key is not None else None
        self.key = key
        self.kind = kind
        self.connector = None

    def queue(self, data: bytes, request: Request | None = None) -> None:
        if self.pending is not None:
            self.pending.append((data, request))

    @property
    def requests(self) -> list:
        return [request for _, request in self.pending or ()]

    def buildProtocol(self, addr):
        if self.key is None:  # the listener: an accepted connection, within the limits
            proto = self.owner.accept_connection(getattr(addr, "host", ""), self.kind)
            if proto is None:
                return None
        else:
            proto = StreamConnection(self.owner, self.pending, kind=self.kind)
        proto.factory = self
        if self.key is not None:
            self.owner.connect_finished(self)
        return proto

    def abandon(self) -> None:
        self.pending = None
        if self.connector is not None:
            self.connector.stopConnecting()

    def clientConnectionFailed(self, connector, reason):
        self.owner.connect_finished(self)
        if self.kind == "TLS":
            _kind, host, port = self.key
            self.owner.tls_failed(self.requests, host, port, describe_failure(reason))
            self.pending = None
            return
        log.info("SIP/TCP connect to {dest} failed: {why}", dest=connector.getDestination(),
                 why=reason.getErrorMessage())


class TlsListenerFactory(TLSMemoryBIOFactory):
    """Twisted's TLS wrapper for the listener, except that a connection the limits refuse
    (the wrapped factory builds no protocol) is closed, as on the TCP listener."""

    noisy = False

    def buildProtocol(self, addr):
        inner = self.wrappedFactory.buildProtocol(addr)
        if inner is None:
            return None
        return self.protocol(self, inner)
