"""A client for rtpengine's ng control protocol: bencoded dictionaries over UDP.

A request is ``<cookie> <bencoded dict>`` with the command in ``command`` (``ping``,
``offer``, ``answer``, ``delete``, ``query``); the reply is ``<the same cookie> <bencoded
dict>`` with ``result`` (``ok``, ``pong``, ``error`` with ``error-reason``; offer and answer
carry the rewritten ``sdp``).  rtpengine keeps its replies by cookie for a while, so a
request sent again (same cookie) is answered again rather than run twice: the client
re-sends an unanswered request after each interval of ``retransmit`` and gives up after
``timeout`` seconds (:class:`NgTimeout`).

:func:`request_bytes` and :func:`parse_reply` are the pure framing (bytes in, bytes out);
:class:`NgClient` is the Twisted UDP side, every timer on the injected clock.  A reply that
is malformed, has an unknown cookie or comes from another address is dropped (counted in
``NgClient.dropped``), never raised.
"""
from __future__ import annotations

import secrets

from twisted.internet import defer
from twisted.internet.protocol import DatagramProtocol

from .bencode import BencodeError, decode, encode

__all__ = ["NgClient", "NgError", "NgTimeout", "parse_reply", "request_bytes"]

DEFAULT_TIMEOUT = 2.0
DEFAULT_RETRANSMIT = (0.25, 0.5, 1.0)  # re-send after 0.25 s, 0.75 s, 1.75 s (cumulative)


class NgError(Exception):
    """rtpengine answered ``result: error`` (its ``error-reason`` is the message)."""


class NgTimeout(Exception):
    """No reply within the timeout (rtpengine not running, or not at that address)."""


def request_bytes(cookie: str, command: str, params: dict) -> bytes:
    body = dict(params)
    body["command"] = command
    return cookie.encode("ascii") + b" " + encode(body)


def parse_reply(data: bytes) -> tuple[str, dict]:
    """(cookie, reply) with text keys and values (bytes decoded as UTF-8); BencodeError
    (a ValueError) when ``data`` is not a cookie and one bencoded dictionary."""
    cookie, space, body = bytes(data).partition(b" ")
    if not space or not cookie or len(cookie) > 64:
        raise BencodeError("no cookie")
    value = decode(body)
    if not isinstance(value, dict):
        raise BencodeError("the reply is not a dictionary")
    return cookie.decode("ascii", "replace"), _text(value)


def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [_text(v) for v in value]
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    return value


class _Pending:
    __slots__ = ("deferred", "data", "timers")

    def __init__(self, deferred, data) -> None:
        self.deferred, self.data, self.timers = deferred, data, []


class NgClient(DatagramProtocol):
    """Requests to one rtpengine at ``address`` (host, port); ``clock`` schedules the
    re-sends and the timeout.  Start it with :meth:`listen` (or ``makeConnection`` with a
    transport, in tests)."""

    def __init__(self, clock, address: tuple[str, int], *, timeout: float = DEFAULT_TIMEOUT,
                 retransmit: tuple[float, ...] = DEFAULT_RETRANSMIT) -> None:
        self.clock = clock
        self.address = (address[0], int(address[1]))
        self.timeout = timeout
        self.retransmit = retransmit
        self._prefix = secrets.token_hex(4)
        self._counter = 0
        self._pending: dict[str, _Pending] = {}
        self.dropped = 0
        self.sent = 0
        self._port = None

    def listen(self, reactor, interface: str | None = None):
        """Bind an ephemeral UDP port (on the loopback when rtpengine is there)."""
        if interface is None:
            interface = "127.0.0.1" if self.address[0].startswith("127.") else ""
        self._port = reactor.listenUDP(0, self, interface=interface)
        return self._port

    def close(self) -> None:
        """Stop listening; what is still waiting fails with NgTimeout."""
        for cookie in list(self._pending):
            self._give_up(cookie)
        port, self._port = self._port, None
        if port is not None:
            port.stopListening()

    # -- commands --------------------------------------------------------------------
    def ping(self) -> defer.Deferred:
        return self.command("ping")

    def offer(self, call_id: str, from_tag: str, sdp: bytes | str, **params) -> defer.Deferred:
        return self.command("offer", **{"call-id": call_id, "from-tag": from_tag,
                                        "sdp": sdp}, **params)

    def answer(self, call_id: str, from_tag: str, to_tag: str, sdp: bytes | str,
               **params) -> defer.Deferred:
        return self.command("answer", **{"call-id": call_id, "from-tag": from_tag,
                                         "to-tag": to_tag, "sdp": sdp}, **params)

    def delete(self, call_id: str, **params) -> defer.Deferred:
        return self.command("delete", **{"call-id": call_id}, **params)

    def query(self, call_id: str, **params) -> defer.Deferred:
        return self.command("query", **{"call-id": call_id}, **params)

    def command(self, command: str, **params) -> defer.Deferred:
        """Send ``command`` with ``params`` (dashes in ng names: pass them as a dict with
        ``**``); fires with the reply dict, or fails with NgError / NgTimeout."""
        self._counter += 1
        cookie = f"{self._prefix}_{self._counter}"
        data = request_bytes(cookie, command, params)
        pending = _Pending(defer.Deferred(), data)
        self._pending[cookie] = pending
        self._send(data)
        at = 0.0
        for interval in self.retransmit:
            at += interval
            if at >= self.timeout:
                break
            pending.timers.append(self.clock.callLater(at, self._resend, cookie))
        pending.timers.append(self.clock.callLater(self.timeout, self._give_up, cookie))
        return pending.deferred

    # -- I/O -------------------------------------------------------------------------
    def _send(self, data: bytes) -> None:
        if self.transport is None:
            return  # not listening (yet): the re-sends and the timeout still run
        self.sent += 1
        try:
            self.transport.write(data, self.address)
        except OSError:
            pass  # e.g. ECONNREFUSED from an earlier datagram: the next re-send tries again

    def _resend(self, cookie: str) -> None:
        pending = self._pending.get(cookie)
        if pending is not None:
            self._send(pending.data)

    def _give_up(self, cookie: str) -> None:
        pending = self._pending.pop(cookie, None)
        if pending is None:
            return
        self._cancel(pending)
        pending.deferred.errback(NgTimeout(f"rtpengine at {self.address[0]}:{self.address[1]} "
                                           f"did not answer within {self.timeout:g} s"))

    @staticmethod
    def _cancel(pending: _Pending) -> None:
        for timer in pending.timers:
            if timer.active():
                timer.cancel()

    def datagramReceived(self, data: bytes, addr) -> None:  # noqa: N802 (Twisted's name)
        if (addr[0], addr[1]) != self.address:
            self.dropped += 1
            return
        try:
            cookie, reply = parse_reply(data)
        except ValueError:
            self.dropped += 1
            return
        pending = self._pending.pop(cookie, None)
        if pending is None:
            self.dropped += 1  # late (after the timeout), duplicated, or not ours
            return
        self._cancel(pending)
        if reply.get("result") == "error":
            pending.deferred.errback(NgError(str(reply.get("error-reason") or "error")))
        else:
            pending.deferred.callback(reply)

    def connectionRefused(self) -> None:  # noqa: N802 (Twisted's name)
        pass  # ICMP port unreachable: rtpengine is not (yet) there; the timeout decides
