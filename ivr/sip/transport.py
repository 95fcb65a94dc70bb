"""SIP over UDP and TCP on one port, and TLS on another: the only place in ivr.sip that
touches sockets.

Receiving (RFC 3261 18.2.1, RFC 3581): each request's top Via gets ``received`` when the
sent-by host is not the packet's source address, and ``rport`` filled in when the client
asked for it, so responses find phones behind NAT.  Sending responses (18.2.2): over the
connection the request came on while it is open, else to ``received``/``rport`` or the
sent-by address.  Malformed requests are answered (400, 505, 513) from whatever could be
read; malformed responses and garbage are dropped.  Nothing raised while handling a
message escapes into the reactor.

UDP (:mod:`.udp`): datagrams are read whole up to 65,535 bytes (RFC 3261 18.1.1 lets a
message be that large; Twisted's default read of 8,192 bytes cut larger INVITEs short).
Where a message came from and where its answer goes is :mod:`.addressing`'s.

TCP: connections are reused in both directions (keyed by the peer's address), closed
after ``idle_timeout`` seconds without traffic, and closed on a framing error or when a
peer's unparsed buffer exceeds the stream parser's limits.  Accepted connections are
capped per source address and in total (:mod:`.connection_limits`: when the table is
full the longest-idle connection makes room), and a message must be complete within
``message_timeout`` seconds of its first byte, so a sender trickling bytes (slowloris)
is closed although its traffic keeps resetting the idle timer.  When a limit bites it is
logged once, and further hits of the same limit are counted into one line a minute.

The connections themselves are :mod:`.stream`'s.  TLS (RFC 3261 26.2, :mod:`.tls` for
certificates and trust): a listener of its own
(``--sips``, 5061 by convention) whose connections are TCP's in everything else: the
same framing, reuse, idle timeout and limits (one connection table for both), plus a
TLS handshake that must finish within ``message_timeout``.  Messages that came over it
have ``Source.transport == "TLS"``, so a phone that registered over TLS is reached over
its own connection, as a TCP phone is.  A ``Destination("TLS", ...)`` without an open
connection opens one, verifying the server's certificate and host name
(:class:`.tls.ClientTrust`); when that fails (no connection, handshake or verification
refused) every request waiting for the connection is answered at once with a local
503 whose reason says why, so a call fails promptly instead of waiting out Timer B.

WebSocket (RFC 7118, :mod:`.websocket`): the HTTP server's ``/sip`` upgrades to
connections of kind ``WS`` (``WSS`` on the HTTPS listener) in the same table and under
the same limits.  Nobody can connect to a browser, so a ``Destination("WS", ...)`` is
the peer's open connection, found by its address or by an alias it gave itself (a
Contact's or Via's ``abc.invalid``); with none open the request gets a local 503 at once.
"""
from __future__ import annotations

import resource
from typing import Callable

from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory

from .connection_limits import ConnectionTable, TcpLimits, Verdict
from .tls import TlsSettings
from .limit_log import LimitLog
from .stream import StreamConnection, StreamFactory, TlsListenerFactory
from .message import (
    Request,
    Response,
    SipParseError,
    make_response,
    parse_datagram,
    serialize,
)
from .uri import SipSyntaxError
# Where messages come from and go (pure) and the datagram side, re-exported: the rest of
# the code and the tests import them from here.
from .addressing import (  # noqa: F401
    Destination,
    Source,
    _same_host,
    reconnect_destination,
    response_destination,
    stamp_via,
)
from .udp import (  # noqa: F401
    MAX_UDP_DATAGRAM,
    UDP_RECEIVE_BUFFER,
    UdpProtocol,
    _ip_family,
    grow_receive_buffer,
    send_datagram,
)

log = Logger(namespace="ivr.sip.transport")


class SipTransport:
    """Owns the UDP socket and TCP listener on one address.

    ``on_message(message, source)`` receives every well-formed message.
    """

    def __init__(self, reactor, host: str, port: int,
                 on_message: Callable[[Request | Response, Source], None],
                 idle_timeout: float = 300.0, tcp_limits: TcpLimits = TcpLimits(),
                 tls: TlsSettings | None = None) -> None:
        self.reactor = reactor
        self.host = host
        self.port = port
        self.on_message = on_message
        self.idle_timeout = idle_timeout
        self.tcp_limits = tcp_limits
        self._inbound: ConnectionTable[StreamConnection] = ConnectionTable(
            tcp_limits, busy=lambda conn: conn.in_message)
        self.limit_log = LimitLog(reactor, log)
        self._udp = UdpProtocol(self)
        self._udp_port = None
        self._tcp_port = None
        self.tls = tls or TlsSettings()  # listener (if any) and whom outbound TLS trusts
        self._tls_port = None
        #: (kind, host, port) -> the open connection to/from that peer (kind TCP or TLS)
        self._connections: dict[tuple[str, str, int], "StreamConnection"] = {}
        self._connecting: dict[tuple[str, str, int], "StreamFactory"] = {}
        #: (host, port) -> when the last TLS connection there failed (an ACK does not retry)
        self._tls_failed: dict[tuple[str, int], float] = {}
        self._all: set["StreamConnection"] = set()  # every open connection, for stop()
        #: WebSocket listeners' ports by kind ("WS", "WSS"), set by whoever serves them
        self.ws_ports: dict[str, int] = {}
        #: (host, port or None) a WebSocket peer calls itself -> its connection
        self._ws_aliases: dict[tuple[str, int | None], object] = {}
        #: called with each TCP/TLS/WS(S) connection once it has closed (the registrar
        #: drops the bindings that were reachable only over it)
        self.on_connection_closed: list[Callable[[object], None]] = []

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        from twisted.internet.error import CannotListenError
        wanted = self.port
        for attempt in range(10):
            self._udp = UdpProtocol(self)  # a fresh one: a stopped port may still hold the last
            self._udp_port = self.reactor.listenUDP(wanted, self._udp, interface=self.host,
                                                    maxPacketSize=MAX_UDP_DATAGRAM)
            self.port = self._udp_port.getHost().port
            try:
                self._tcp_port = self.reactor.listenTCP(self.port, StreamFactory(self),
                                                        interface=self.host)
                grow_receive_buffer(self._udp_port)
                self._check_file_limit()
                break
            except CannotListenError:
                # Port 0: the UDP port the OS chose may be taken for TCP; try another.
                self._udp_port.stopListening()
                self._udp_port = None
                if wanted != 0 or attempt == 9:
                    raise
        self._start_tls()

    def _start_tls(self) -> None:
        if self.tls.listen is None:
            return
        host, port = self.tls.listen
        factory = TlsListenerFactory(self.tls.server_options(), False,
                                      StreamFactory(self, kind="TLS"))
        self._tls_port = self.reactor.listenTCP(port, factory, interface=host)
        log.info("SIP over TLS on {host}:{port}", host=host, port=self.tls_port)

    @property
    def tls_port(self) -> int | None:
        """The TLS listener's port (None without ``--sips``)."""
        return self._tls_port.getHost().port if self._tls_port is not None else None

    def stop(self):
        """Close the listeners and every connection; the Deferred fires once all are
        closed (so nothing is left on the reactor)."""
        from twisted.internet.defer import Deferred
        self.limit_log.stop()
        deferreds = []
        for factory in list(self._connecting.values()):
            factory.abandon()
        self._connecting.clear()
        for conn in list(self._all):
            closed = Deferred()
            conn.on_close.append(closed)
            deferreds.append(closed)
            conn.close()
        if self._udp_port is not None:
            deferreds.append(self._udp_port.stopListening())
        for port in (self._tcp_port, self._tls_port):
            if port is not None:
                deferreds.append(port.stopListening())
        from twisted.internet.defer import gatherResults
        return gatherResults([d for d in deferreds if d is not None])

    def is_reliable(self, where) -> bool:
        return where.reliable

    # -- receiving --------------------------------------------------------------------
    def handle_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        source = Source("UDP", addr[0], addr[1])
        if data.strip(b"\r\n") == b"":
            return  # keep-alive
        try:
            message = parse_datagram(data)
        except SipParseError as exc:
            self._answer_parse_error(exc, source)
            return
        except Exception:  # a parser bug must not take the reactor down
            log.failure("parser crashed on a datagram from {addr}", addr=addr)
            return
        self.dispatch(message, source)

    def dispatch(self, message: Request | Response, source: Source) -> None:
        try:
            if isinstance(message, Request):
                stamp_via(message, source)
            self.on_message(message, source)
        except SipSyntaxError as exc:
            if isinstance(message, Request) and message.method != "ACK":
                self._answer_parse_error(SipParseError(str(exc), 400, message), source)
        except Exception:
            log.failure("error handling {message!r} from {host}:{port}",
                        message=message, host=source.host, port=source.port)

    def _answer_parse_error(self, exc: SipParseError, source: Source) -> None:
        log.info("malformed message from {host}:{port}: {reason} ({status})",
                 host=source.host, port=source.port, reason=exc.reason,
                 status=exc.status or "dropped")
        request = exc.request
        if exc.status is None or request is None or request.method == "ACK":
            return
        if not request.headers.get_raw("Via"):
            return  # nowhere to send a response
        try:
            stamp_via(request, source)
        except Exception:
            pass  # an unparseable Via: answer to where the packet came from (below)
        try:
            response = make_response(request, exc.status, reason=_short(exc.reason))
            try:
                self.send_response(response, source)
            except Exception:
                # The Via cannot route the answer (18.2.2 needs it): send it straight back
                # to the packet's source, which is where a sender behind NAT listens anyway.
                data = serialize(response)
                if source.reliable and source.connection is not None:
                    source.connection.write(data)
                else:
                    self._udp.transport.write(data, (source.host, source.port))
        except Exception:
            log.debug("could not answer malformed message: {e}", e=exc.reason)

    # -- sending ----------------------------------------------------------------------
    def send_response(self, response: Response, source: Source) -> None:
        data = serialize(response)
        if source.reliable:
            conn = source.connection
            if conn is not None and conn.connected and not conn.closing:
                conn.write(data)
                return
            host, port = reconnect_destination(response)
            self._send_stream(source.transport, data, host, port)
            return
        self._send_udp(data, response_destination(response))

    def prepare_response(self, response: Response, source: Source):
        """``(datagram, (host, port))`` to re-send ``response`` later with
        :meth:`send_prepared` (a parked transaction keeps only that); None over TCP/TLS,
        where a transaction never lingers to re-send."""
        if source.reliable:
            return None
        return serialize(response), response_destination(response)

    def send_prepared(self, data: bytes, addr: tuple[str, int]) -> None:
        self._send_udp(data, addr)

    def send_request(self, request: Request, dest: Destination) -> None:
        data = serialize(request)
        if dest.transport == "UDP":
            self._send_udp(data, (dest.host, dest.port))
        else:
            self._send_stream(dest.transport, data, dest.host, dest.port, request)

    def _send_udp(self, data: bytes, addr: tuple[str, int]) -> None:
        send_datagram(self._udp.transport, data, addr)

    def _send_stream(self, kind: str, data: bytes, host: str, port: int,
                     request: Request | None = None) -> None:
        """Over the open TCP/TLS connection to ``host:port``, else a new one (``request``:
        the message ``data`` carries, answered with a local 503 if a TLS connection
        cannot be made)."""
        if kind in ("WS", "WSS"):
            self._send_ws(kind, data, host, port, request)
            return
        kind = "TLS" if kind == "TLS" else "TCP"
        key = (kind, host, port)
        conn = self._connections.get(key)
        if conn is not None and conn.connected and not conn.closing:
            conn.write(data, request)
            return
        connecting = self._connecting.get(key)
        if connecting is not None:
            connecting.queue(data, request)  # one connection per peer, even while connecting
            return
        if kind == "TLS" and request is not None and request.method == "ACK":
            failed = self._tls_failed.get((host, port))
            if failed is not None and self.reactor.seconds() - failed < 32:
                return  # the ACK of the 503 we made up: nobody there to read it
        factory = StreamFactory(self, key=key, kind=kind)
        factory.queue(data, request)
        self._connecting[key] = factory
        if kind == "TLS":
            try:
                creator = self.tls.trust.creator(host, port)
            except Exception as exc:  # an unusable trust setting: fail the request now
                del self._connecting[key]
                self.tls_failed(factory.requests, host, port, f"TLS setup: {exc}")
                return
            wrapped = TLSMemoryBIOFactory(creator, True, factory)
            factory.connector = self.reactor.connectTCP(host, port, wrapped, timeout=10)
        else:
            factory.connector = self.reactor.connectTCP(host, port, factory, timeout=10)

    def _send_ws(self, kind: str, data: bytes, host: str, port: int,
                 request: Request | None) -> None:
        """Over the WebSocket peer's open connection (by address, else by alias); a
        request with none open is answered with a local 503 (we cannot connect)."""
        conn = self._connections.get((kind, host, port))
        if conn is None or conn.closing:
            host_key = host.strip("[]").lower()
            conn = self._ws_aliases.get((host_key, port)) or \
                self._ws_aliases.get((host_key, None))
        if conn is not None and conn.connected and not conn.closing:
            conn.write(data, request)
            return
        if request is None:
            log.info("no SIP/{kind} connection to {host}:{port}: response dropped",
                     kind=kind, host=host, port=port)
            return
        self.tls_failed([request], host, port, "no WebSocket connection", kind=kind)

    def ws_aliases_seen(self, conn, keys) -> None:
        """``conn``'s peer named itself ``keys`` ((host, port or None)): reach it by them
        (the newest connection to claim a name has it)."""
        for key in keys:
            if key in conn.aliases:
                continue
            if len(conn.aliases) >= 8:
                return
            old = self._ws_aliases.get(key)
            if old is not None and old is not conn:
                old.aliases.discard(key)
            self._ws_aliases[key] = conn
            conn.aliases.add(key)

    def tls_failed(self, requests, host: str, port: int, why: str, kind: str = "TLS") -> None:
        """A TLS (or WebSocket) connection to ``host:port`` could not carry ``requests``:
        log it once and answer each (but ACK) with a local 503 giving the reason (RFC 3261
        8.1.3.1 treats a transport failure as a 503), one reactor turn later."""
        if kind == "TLS":
            self._tls_failed[(host, port)] = self.reactor.seconds()
            if len(self._tls_failed) > 1024:  # a bounded memory of recent failures
                self._tls_failed.pop(next(iter(self._tls_failed)))
        log.warn("SIP/{kind} connection to {host}:{port} failed: {why}", kind=kind,
                 host=host, port=port, why=why)
        source = Source(kind, host, port)
        for request in requests:
            if request is None or request.method == "ACK":
                continue
            try:
                response = make_response(request, 503,
                                         reason=_short(f"{kind} failed: {why}"))
            except Exception:
                continue
            self.reactor.callLater(0, self.dispatch, response, source)

    def stream_source(self, conn: "StreamConnection") -> Source:
        """The :class:`Source` of messages read from ``conn``."""
        return Source(conn.kind, conn.peer[0], conn.peer[1], conn)

    def register_connection(self, conn: "StreamConnection") -> None:
        self._connections[conn.key] = conn
        self._all.add(conn)

    def forget_connection(self, conn: "StreamConnection") -> None:
        for key in getattr(conn, "aliases", ()):
            if self._ws_aliases.get(key) is conn:
                del self._ws_aliases[key]
        self._all.discard(conn)
        self._inbound.forget(conn)
        if self._connections.get(conn.key) is conn:
            del self._connections[conn.key]
        for observer in self.on_connection_closed:
            try:
                observer(conn)
            except Exception:
                log.failure("handling the close of SIP/{kind} connection {peer} failed",
                            kind=conn.kind, peer=conn.peer)

    def connect_finished(self, factory: "StreamFactory") -> None:
        if self._connecting.get(factory.key) is factory:
            del self._connecting[factory.key]

    # -- TCP limits -------------------------------------------------------------------
    def accept_connection(self, host: str, kind: str = "TCP",
                          make=StreamConnection) -> "StreamConnection | None":
        """A protocol (``make(self, kind=kind)``) for a new connection from ``host``, or
        None to close it at once (Twisted closes the socket when ``buildProtocol`` returns
        None)."""
        admission = self._inbound.admit(host)
        if admission.evict is not None:
            victim = admission.evict
            self.limit_log.note("evicted", "{n} idle SIP/TCP connection(s) closed to make room",
                                "SIP/TCP connection table full ({max}): closing the longest-"
                                "idle connection, from {victim}, to take one from {host}",
                                max=self.tcp_limits.max_connections,
                                victim=victim.peer[0], host=host)
            victim.abort()
        elif admission.verdict is Verdict.REFUSE_ADDRESS_FULL:
            self.limit_log.note("per-address", "{n} SIP/TCP connection(s) refused (per-address "
                                "limit)", "SIP/TCP connection from {host} refused: it already "
                                "has {max} open", host=host,
                                max=self.tcp_limits.max_per_address)
            return None
        elif admission.verdict is Verdict.REFUSE_TABLE_FULL:
            self.limit_log.note("full", "{n} SIP/TCP connection(s) refused (table full)",
                                "SIP/TCP connection from {host} refused: {max} connections "
                                "open and none idle", host=host,
                                max=self.tcp_limits.max_connections)
            return None
        conn = make(self, kind=kind)
        self._inbound.add(conn, host)
        return conn

    def connection_active(self, conn: "StreamConnection") -> None:
        self._inbound.touch(conn)

    def _check_file_limit(self) -> None:
        """Warn when the connection cap could use up the process's open files."""
        cap = self.tcp_limits.max_connections
        try:
            soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        except (OSError, ValueError):
            return
        if soft != resource.RLIM_INFINITY and (not cap or cap + 64 > soft):
            log.warn("open-file limit {soft} leaves too little room beside {cap} SIP/TCP "
                     "connections and two RTP sockets per call: raise it (ulimit -n) or "
                     "lower --sip-tcp-max-connections", soft=soft, cap=cap or "unlimited")


def _short(reason: str) -> str:
    reason = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in reason)
    return reason[:100] or "Bad Request"
