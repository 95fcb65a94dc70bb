"""How many SIP/TCP connections the listener keeps, and which one makes room (pure).

Every accepted connection costs a file descriptor and a stream parser, so a peer that
opens connections and never closes them could take them all.  :class:`ConnectionTable`
counts the accepted connections per source address and in total and answers, for each
new one, whether to take it:

* a source address already at ``max_per_address`` is refused;
* when ``max_connections`` are open, the connection that has been quiet longest and is
  not in the middle of a message is closed to make room (a registered phone that keeps a
  connection open is idle most of the time; an attacker's half-sent messages are not idle
  but are closed by the message deadline instead); if every connection is in a message,
  the new one is refused.

Connections this side opened (to phones and trunks) are not counted: we open at most one
per destination, and the limits must never stop us from reaching a phone.

No clock and no sockets here: the transport calls :meth:`admit`, :meth:`touch` and
:meth:`forget`, and closes what it is told to.
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Generic, Hashable, TypeVar

C = TypeVar("C", bound=Hashable)


@dataclass(frozen=True)
class TcpLimits:
    """Limits on SIP/TCP connections.  0 turns a limit off.

    Defaults: 1000 connections in all is well above what one IVR process serves (each
    phone keeps one, a trunk a few) and bounds memory (a parser may buffer 64 KB of
    headers plus 1 MB of body); the process needs an open-file limit above it (plus two
    descriptors per call for RTP), which the transport warns about at start.  50 per
    address lets a PBX or an office NAT with many phones in, but no single host can take
    more than 5% of the table.
    10 seconds for a message: a SIP message is a few KB and arrives in milliseconds;
    10 s still covers several TCP retransmissions on a poor link, and is a third of an
    INVITE client transaction's 32 s (Timer B), so a slow sender is cut well before its
    own transaction would give up.
    """

    max_connections: int = 1000
    max_per_address: int = 50
    message_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.max_connections < 0 or self.max_per_address < 0 or self.message_timeout < 0:
            raise ValueError("TCP limits cannot be negative")


class Verdict(Enum):
    ACCEPT = "accept"
    ACCEPT_AFTER_EVICTING = "accept after evicting the longest-idle connection"
    REFUSE_ADDRESS_FULL = "refuse: this address has too many connections"
    REFUSE_TABLE_FULL = "refuse: every connection is in the middle of a message"


@dataclass(frozen=True)
class Admission(Generic[C]):
    verdict: Verdict
    evict: C | None = None  # close this one (already forgotten by the table)

    @property
    def accepted(self) -> bool:
        return self.verdict in (Verdict.ACCEPT, Verdict.ACCEPT_AFTER_EVICTING)


class ConnectionTable(Generic[C]):
    """Accepted connections, least recently active first.

    ``busy(conn)`` says whether a connection is part-way through a message (such a
    connection is never chosen to make room).
    """

    def __init__(self, limits: TcpLimits, busy: Callable[[C], bool]) -> None:
        self.limits = limits
        self._busy = busy
        self._order: OrderedDict[C, str] = OrderedDict()  # conn -> source host
        self._per_host: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._order)

    def count(self, host: str) -> int:
        return self._per_host[host]

    def __contains__(self, conn: object) -> bool:
        return conn in self._order

    def admit(self, host: str) -> Admission[C]:
        """Whether a new connection from ``host`` may be taken.  When the answer names a
        connection to evict, that connection has already left the table."""
        per_host, total = self.limits.max_per_address, self.limits.max_connections
        if per_host and self._per_host[host] >= per_host:
            return Admission(Verdict.REFUSE_ADDRESS_FULL)
        if not total or len(self._order) < total:
            return Admission(Verdict.ACCEPT)
        for conn in self._order:  # longest quiet first
            if not self._busy(conn):
                self.forget(conn)
                return Admission(Verdict.ACCEPT_AFTER_EVICTING, conn)
        return Admission(Verdict.REFUSE_TABLE_FULL)

    def add(self, conn: C, host: str) -> None:
        if conn in self._order:
            return
        self._order[conn] = host
        self._per_host[host] += 1

    def touch(self, conn: C) -> None:
        """Traffic on ``conn``: it becomes the most recently active."""
        if conn in self._order:
            self._order.move_to_end(conn)

    def forget(self, conn: C) -> None:
        host = self._order.pop(conn, None)
        if host is None:
            return
        self._per_host[host] -= 1
        if self._per_host[host] <= 0:
            del self._per_host[host]
