"""UDP port pairs for RTP (even port) and RTCP (port + 1).

``PortAllocator(low, high)`` walks the range round-robin (a released pair is not handed out again
until the rest of the range was tried, so late packets of a finished call do not land in the
next one), skipping pairs where either bind fails (another process holds the port).
``EphemeralPorts`` lets the kernel choose (tests, or when no range is configured).

With a ``receiver`` (the server), ``PortAllocator`` binds plain non-blocking sockets and
registers them with that :class:`~ivr.rtp.receiver.MediaReceiver`, which the media clock
reads in batches (see ``receiver.py``); the reactor never sees them.  Binding a plain socket
also costs a fraction of ``reactor.listenUDP`` (which validates the address, logs, and
registers with the reactor), and call setup binds two per call.  Without one, ports are
Twisted ``listenUDP`` ports read by the reactor (``ivr phone``, tests).
"""
from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort

__all__ = ["PortPair", "PortsExhausted", "PortAllocator", "EphemeralPorts", "SocketPort"]


class PortsExhausted(Exception):
    """No free even/odd port pair could be bound in the configured range."""


@dataclass
class PortPair:
    number: int  # the RTP port; RTCP is number + 1
    rtp: IListeningPort
    rtcp: IListeningPort


class SocketPort:
    """A bound UDP socket whose datagrams a MediaReceiver hands to ``protocol``."""

    def __init__(self, sock: socket.socket, protocol) -> None:
        self.socket = sock
        self.protocol = protocol
        protocol.transport = self

    def write(self, data: bytes, addr) -> None:
        self.socket.sendto(data, addr)

    def stopListening(self) -> None:  # noqa: N802
        self.socket.close()


def _bind_socket(interface: str, port: int) -> socket.socket | None:
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((interface, port))
    except OSError as e:
        sock.close()
        if e.errno in (errno.EADDRINUSE, errno.EACCES):
            return None
        raise
    sock.setblocking(False)
    return sock


def _bind_socket_pair(receiver, port: int, make_rtp, make_rtcp,
                      interface: str) -> PortPair | None:
    rtp = _bind_socket(interface, port)
    if rtp is None:
        return None
    number = rtp.getsockname()[1]
    rtcp = None if number % 2 else _bind_socket(interface, number + 1)
    if rtcp is None:
        rtp.close()
        return None
    pair = PortPair(number, SocketPort(rtp, make_rtp()), SocketPort(rtcp, make_rtcp()))
    receiver.add(rtp, pair.rtp.protocol.datagramReceived)
    receiver.add(rtcp, pair.rtcp.protocol.datagramReceived)
    return pair


def _bind_pair(reactor, port: int, make_rtp, make_rtcp, interface: str) -> PortPair | None:
    # fresh protocol objects per attempt: an undone bind detaches its protocol only later
    try:
        rtp = reactor.listenUDP(port, make_rtp(), interface=interface)
    except CannotListenError:
        return None
    number = rtp.getHost().port
    if number % 2:
        rtp.stopListening()
        return None
    try:
        rtcp = reactor.listenUDP(number + 1, make_rtcp(), interface=interface)
    except CannotListenError:
        rtp.stopListening()
        return None
    return PortPair(number, rtp, rtcp)


class PortAllocator:
    def __init__(self, low: int, high: int, reactor=None, receiver=None) -> None:
        low += low % 2  # first even port
        if not 0 < low < high <= 65535:
            raise ValueError(f"bad RTP port range {low}-{high}")
        self.low = low
        self.high = high  # inclusive; the last pair is (high-1, high) when high is odd
        self._reactor = reactor
        self._receiver = receiver
        self._next = low
        self._in_use: set[int] = set()

    @property
    def capacity(self) -> int:
        return (self.high - self.low + 1) // 2

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def allocate(self, make_rtp, make_rtcp, interface: str = "127.0.0.1",
                 reactor=None) -> PortPair:
        """Bind a pair; ``make_rtp``/``make_rtcp`` are zero-argument DatagramProtocol factories."""
        reactor = reactor or self._reactor
        if reactor is None and self._receiver is None:
            from twisted.internet import reactor  # noqa: the entry point's reactor
        for _ in range(self.capacity):
            port = self._next
            self._next = port + 2 if port + 3 <= self.high else self.low
            if port in self._in_use:
                continue
            if self._receiver is not None:
                pair = _bind_socket_pair(self._receiver, port, make_rtp, make_rtcp, interface)
            else:
                pair = _bind_pair(reactor, port, make_rtp, make_rtcp, interface)
            if pair is not None:
                self._in_use.add(pair.number)
                return pair
        raise PortsExhausted(f"no free RTP port pair in {self.low}-{self.high}")

    def release(self, pair: PortPair):
        """Stop listening on both ports and free the pair; returns a Deferred (or None)."""
        self._in_use.discard(pair.number)
        if isinstance(pair.rtp, SocketPort):
            for port in (pair.rtp, pair.rtcp):
                self._receiver.remove(port.socket)
                port.stopListening()
            return None
        return _stop(pair)


class EphemeralPorts:
    """Kernel-chosen ports: bind RTP on port 0 until it is even and port + 1 is free."""

    def __init__(self, reactor=None, attempts: int = 64) -> None:
        self._reactor = reactor
        self.attempts = attempts

    def allocate(self, make_rtp, make_rtcp, interface: str = "127.0.0.1",
                 reactor=None) -> PortPair:
        """Bind a pair; ``make_rtp``/``make_rtcp`` are zero-argument DatagramProtocol factories."""
        reactor = reactor or self._reactor
        if reactor is None:
            from twisted.internet import reactor  # noqa: the entry point's reactor
        for _ in range(self.attempts):
            pair = _bind_pair(reactor, 0, make_rtp, make_rtcp, interface)
            if pair is not None:
                return pair
        raise PortsExhausted("could not bind an even/odd ephemeral port pair")

    def release(self, pair: PortPair):
        return _stop(pair)


def _stop(pair: PortPair):
    from twisted.internet import defer

    return defer.gatherResults([defer.maybeDeferred(pair.rtp.stopListening),
                                defer.maybeDeferred(pair.rtcp.stopListening)])
