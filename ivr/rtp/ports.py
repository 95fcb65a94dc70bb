"""UDP port pairs for RTP (even port) and RTCP (port + 1).

``PortAllocator(low, high)`` walks the range round-robin (a released pair is not handed out again
until the rest of the range was tried, so late packets of a finished call do not land in the
next one), skipping pairs where either bind fails (another process holds the port).
``EphemeralPorts`` lets the kernel choose (tests, or when no range is configured).
"""
from __future__ import annotations

from dataclasses import dataclass

from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort

__all__ = ["PortPair", "PortsExhausted", "PortAllocator", "EphemeralPorts"]


class PortsExhausted(Exception):
    """No free even/odd port pair could be bound in the configured range."""


@dataclass
class PortPair:
    number: int  # the RTP port; RTCP is number + 1
    rtp: IListeningPort
    rtcp: IListeningPort

    @property
    def rtcp_number(self) -> int:
        return self.number + 1


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
    def __init__(self, low: int, high: int, reactor=None) -> None:
        low += low % 2  # first even port
        if not 0 < low < high <= 65535:
            raise ValueError(f"bad RTP port range {low}-{high}")
        self.low = low
        self.high = high  # inclusive; the last pair is (high-1, high) when high is odd
        self._reactor = reactor
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
        if reactor is None:
            from twisted.internet import reactor  # noqa: the entry point's reactor
        for _ in range(self.capacity):
            port = self._next
            self._next = port + 2 if port + 3 <= self.high else self.low
            if port in self._in_use:
                continue
            pair = _bind_pair(reactor, port, make_rtp, make_rtcp, interface)
            if pair is not None:
                self._in_use.add(pair.number)
                return pair
        raise PortsExhausted(f"no free RTP port pair in {self.low}-{self.high}")

    def release(self, pair: PortPair):
        """Stop listening on both ports and free the pair; returns a Deferred (or None)."""
        self._in_use.discard(pair.number)
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
