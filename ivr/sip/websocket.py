"""SIP over WebSocket (RFC 7118): the ``/sip`` resource of the HTTP server and the
connections it upgrades, for :class:`.transport.SipTransport`, which owns them.

The WebSocket protocol is wsproto's (the handshake checks and the framing, masking,
UTF-8 and close handshake); this module only decides who may connect and moves SIP
messages.

* The upgrade (``GET /sip``): wsproto checks the handshake; the client must offer the
  subprotocol ``sip`` (400 otherwise, RFC 7118 4), a browser's ``Origin`` must be allowed
  (:func:`origin_allowed`, 403 otherwise) and the transport's connection limits must
  have room (503 otherwise, :mod:`.connection_limits`: WebSocket connections share the
  SIP/TCP table).  Then the HTTP connection is handed to a :class:`WsConnection`.
* Each WebSocket message (text or binary) is one SIP message (RFC 7118 5.1), parsed as a
  datagram and dispatched with ``Source.transport`` ``"WS"`` (plain HTTP) or ``"WSS"``
  (the HTTPS listener), so responses and later requests go back over this connection.
  A message over :data:`MAX_MESSAGE` bytes closes the connection (1009), as does one
  not complete ``message_timeout`` seconds after its first frame; the idle timeout is
  the stream connections' one.  A message of only CRLFs is a keep-alive and is answered
  with one CRLF (as SIP.js expects).
* Browsers cannot be connected to: a request for a WebSocket peer is sent over its open
  connection, found by the connection's address or by an alias, a host:port the peer
  named in a Contact or Via on it (``sip:x@abc.invalid;transport=ws``, RFC 7118 5.2).
"""
from __future__ import annotations

from urllib.parse import urlsplit

from twisted.internet import protocol
from twisted.logger import Logger
from twisted.web import resource, server as web_server
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Ping,
                            Request as WsRequest, TextMessage)
from wsproto.frame_protocol import CloseReason
from wsproto.handshake import H11Handshake
from wsproto.utilities import ProtocolError

from .message import (MAX_BODY_BYTES, MAX_HEADER_BYTES, Request, SipParseError,
                      parse_datagram)

log = Logger(namespace="ivr.sip.websocket")

SUBPROTOCOL = "sip"  # RFC 7118 11.1
#: The largest SIP message a WebSocket message may carry: the stream parser's limits.
MAX_MESSAGE = MAX_HEADER_BYTES + MAX_BODY_BYTES
MAX_ALIASES = 8  # host:port names one connection may hold (a browser uses one or two)
DEFAULT_PORTS = {"http": 80, "https": 443}


class OriginError(ValueError):
    """An allowed-origin setting that is not ``*`` or ``scheme://host[:port]``."""


def normalise_origin(text: str) -> str:
    """``*``, or ``http(s)://host[:port]`` lower-cased without a default port, as a
    browser sends it in ``Origin``.  Raises :class:`OriginError`."""
    text = text.strip()
    if text == "*":
        return text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise OriginError(f"not an origin: {text!r}") from None
    if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname:
        raise OriginError(f"an origin is http(s)://host[:port], got {text!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise OriginError(f"an origin has no path, query or user: {text!r}")
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def origin_allowed(origin: str | None, allowed, own_origin: str | None) -> bool:
    """Whether a WebSocket upgrade with ``Origin: origin`` may proceed: no Origin at all
    (not a browser: a softphone or a test client, which could send any Origin anyway),
    the page's own origin (``own_origin``: our scheme and the request's Host), or one of
    ``allowed`` (normalised origins, ``*`` for any)."""
    if origin is None:
        return True
    if "*" in allowed:
        return True
    try:
        origin = normalise_origin(origin)
    except OriginError:
        return False  # "null" (a sandboxed or file: page) and anything unreadable
    if own_origin is not None:
        try:
            if origin == normalise_origin(own_origin):
                return True
        except OriginError:
            pass
    return origin in allowed


def alias_keys(message) -> list[tuple[str, int | None]]:
    """The (host, port) names a WebSocket peer gives itself in ``message``: its Contact
    URIs and, in a request, its top Via's sent-by (port None when not written)."""
    out = []
    try:
        for contact in message.contacts:
            uri = contact.uri
            host = getattr(uri, "host_no_brackets", None)
            if host:
                out.append((host.lower(), uri.port))
        if isinstance(message, Request):
            via = message.top_via
            out.append((via.host_no_brackets.lower(), via.port))
    except Exception:
        pass  # an unreadable header names nothing
    return out[:MAX_ALIASES]


class WsConnection(protocol.Protocol):
    """One upgraded SIP WebSocket connection (``kind`` ``"WS"`` or ``"WSS"``); it offers
    the transport what a :class:`.stream.StreamConnection` does."""

    def __init__(self, owner, kind: str = "WS") -> None:
        self.owner = owner
        self.kind = kind
        self.ws = Connection(ConnectionType.SERVER)
        self.peer: tuple[str, int] = ("", 0)
        self.closing = False
        self.on_close: list = []
        self.aliases: set[tuple[str, int | None]] = set()
        self._parts: list = []  # the frames of the message arriving
        self._size = 0
        self._idle = None
        self._deadline = None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.kind, self.peer[0], self.peer[1])

    @property
    def in_message(self) -> bool:
        return bool(self._parts)

    def connectionMade(self):
        peer = self.transport.getPeer()
        self.peer = (peer.host, peer.port)
        self.owner.register_connection(self)
        self._touch()

    # -- sending ----------------------------------------------------------------------
    def write(self, data: bytes, request=None) -> None:
        if self.closing:
            return
        try:
            event = TextMessage(data=data.decode("utf-8"))
        except UnicodeDecodeError:
            event = BytesMessage(data=data)
        self.transport.write(self.ws.send(event))
        self._touch()

    def close(self, code: int = CloseReason.NORMAL_CLOSURE, reason: str = "") -> None:
        if self.closing:
            return
        self.closing = True
        try:
            self.transport.write(self.ws.send(CloseConnection(code=code, reason=reason)))
        except ProtocolError:
            pass  # already closing on the WebSocket level
        self.transport.loseConnection()

    def abort(self) -> None:
        self.closing = True
        self.transport.abortConnection()

    # -- timers -----------------------------------------------------------------------
    def _touch(self) -> None:
        if self._idle is not None and self._idle.active():
            self._idle.reset(self.owner.idle_timeout)
        else:
            self._idle = self.owner.reactor.callLater(self.owner.idle_timeout, self._expire)
        self.owner.connection_active(self)

    def _expire(self) -> None:
        log.info("closing idle SIP/{kind} connection from {peer}", kind=self.kind,
                 peer=self.peer)
        self.close(CloseReason.GOING_AWAY, "idle")

    def _follow_deadline(self) -> None:
        timeout = self.owner.tcp_limits.message_timeout
        running = self._deadline is not None and self._deadline.active()
        if not self._parts:
            if running:
                self._deadline.cancel()
        elif not running and timeout:
            self._deadline = self.owner.reactor.callLater(timeout, self._too_slow)

    def _too_slow(self) -> None:
        self.owner.limit_log.note(
            "ws-deadline", "{n} SIP/WebSocket connection(s) closed for a message not "
            "completed in time", "closing SIP/{transport} connection from {peer}: a message "
            "still incomplete {s:g} s after its first frame", transport=self.kind,
            peer=self.peer[0], s=self.owner.tcp_limits.message_timeout)
        self.abort()

    # -- receiving --------------------------------------------------------------------
    def dataReceived(self, data):
        if self.closing:
            return
        self._touch()
        try:
            self.ws.receive_data(data)
            for event in self.ws.events():
                if self.closing:
                    return
                self._event(event)
        except Exception:
            log.failure("SIP/WebSocket handling failed; closing {peer}", peer=self.peer)
            self.abort()
            return
        self._follow_deadline()

    def _event(self, event) -> None:
        if isinstance(event, (TextMessage, BytesMessage)):
            part = event.data.encode("utf-8") if isinstance(event, TextMessage) else \
                bytes(event.data)
            self._size += len(part)
            if self._size > MAX_MESSAGE:
                self.owner.limit_log.note(
                    "ws-size", "{n} SIP/WebSocket connection(s) closed for a message too big",
                    "closing SIP/{transport} connection from {peer}: a message over {max} bytes",
                    transport=self.kind, peer=self.peer[0], max=MAX_MESSAGE)
                self._parts, self._size = [], 0
                self.close(CloseReason.MESSAGE_TOO_BIG, "SIP message too big")
                return
            self._parts.append(part)
            if event.message_finished:
                message, self._parts, self._size = b"".join(self._parts), [], 0
                self._message(message)
        elif isinstance(event, Ping):
            self.transport.write(self.ws.send(event.response()))
        elif isinstance(event, CloseConnection):
            self.closing = True
            try:
                self.transport.write(self.ws.send(event.response()))
            except ProtocolError:
                pass
            self.transport.loseConnection()

    def _message(self, data: bytes) -> None:
        source = self.owner.stream_source(self)
        if data.strip(b"\r\n") == b"":
            self.transport.write(self.ws.send(TextMessage(data="\r\n")))  # keep-alive pong
            return
        try:
            message = parse_datagram(data)
        except SipParseError as exc:
            self.owner._answer_parse_error(exc, source)
            return
        self.owner.ws_aliases_seen(self, alias_keys(message))
        self.owner.dispatch(message, source)

    def connectionLost(self, reason=protocol.connectionDone):
        self.closing = True
        for timer in (self._idle, self._deadline):
            if timer is not None and timer.active():
                timer.cancel()
        self.owner.forget_connection(self)
        waiting, self.on_close = self.on_close, []
        for deferred in waiting:
            deferred.callback(None)


class SipWebSocketResource(resource.Resource):
    """``/sip`` on the HTTP server: upgrades a request to a SIP WebSocket connection of
    ``transport`` (``kind`` ``"WSS"`` on the HTTPS listener), if its origin is allowed."""

    isLeaf = True

    def __init__(self, transport, origins=(), kind: str = "WS") -> None:
        super().__init__()
        self.sip = transport
        self.origins = frozenset(origins)
        self.kind = kind

    def render(self, request):
        if request.method != b"GET":
            return _refuse(request, 405, "a SIP WebSocket is opened with GET",
                           [(b"allow", b"GET")])
        headers = [(name, value) for name, values in request.requestHeaders.getAllRawHeaders()
                   for value in values]
        handshake = H11Handshake(ConnectionType.SERVER)
        try:
            handshake.initiate_upgrade_connection(headers, request.uri)
            [ws_request] = [e for e in handshake.events() if isinstance(e, WsRequest)]
        except (ProtocolError, ValueError):
            return _refuse(request, 426, "a WebSocket upgrade (version 13) is needed here",
                           [(b"upgrade", b"websocket"), (b"sec-websocket-version", b"13")])
        if SUBPROTOCOL not in [p.strip().lower() for p in ws_request.subprotocols]:
            return _refuse(request, 400, "the WebSocket subprotocol 'sip' is required")
        origin = request.getHeader(b"origin")
        origin = origin.decode("latin-1") if origin is not None else None
        scheme = "https" if request.isSecure() else "http"
        own = f"{scheme}://{ws_request.host}" if ws_request.host else None
        if not origin_allowed(origin, self.origins, own):
            log.info("SIP WebSocket from {peer} refused: origin {origin} not allowed",
                     peer=request.getClientAddress().host, origin=origin)
            return _refuse(request, 403, "this origin may not open a SIP WebSocket")
        peer = request.getClientAddress()
        conn = self.sip.accept_connection(getattr(peer, "host", ""), self.kind,
                                          make=WsConnection)
        if conn is None:
            return _refuse(request, 503, "too many SIP connections", [(b"retry-after", b"5")])
        accept = handshake.send(AcceptConnection(subprotocol=SUBPROTOCOL))
        channel = request.channel
        channel.dataReceived = conn.dataReceived  # the bytes are the WebSocket's from here
        channel.connectionLost = conn.connectionLost
        channel.transport.write(accept)
        conn.makeConnection(channel.transport)
        return web_server.NOT_DONE_YET


def _refuse(request, status: int, message: str, headers=()) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    for name, value in headers:
        request.setHeader(name, value)
    return (message + "\n").encode()
