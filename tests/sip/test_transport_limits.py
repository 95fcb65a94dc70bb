"""SipTransport's limits: whole UDP datagrams up to 65,535 bytes, SIP/TCP connection caps
(per address and in total, the longest-idle connection making room) and the deadline for
a message to complete.  First on task.Clock with the transport's own protocol objects,
then on real sockets on 127.0.0.x."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
from twisted.internet import defer, protocol, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection

from ivr.sip.connection_limits import TcpLimits
from ivr.sip.message import make_response, parse_datagram
from ivr.sip.stream import StreamFactory as _TcpFactory
from ivr.sip.transport import UDP_RECEIVE_BUFFER, SipTransport

from .test_transport import HOST, TcpPeer, UdpPeer, _Base, request_bytes, sleep, wait_until


# -- on task.Clock, with the transport's protocol objects ------------------------------

class FakeLog:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def warn(self, fmt: str, **fields) -> None:
        self.lines.append(fmt.format(**fields))


def clock_transport(limits: TcpLimits | None = None, idle_timeout: float = 300.0):
    clock = Clock()
    messages: list = []
    kwargs = {} if limits is None else {"tcp_limits": limits}
    transport = SipTransport(clock, HOST, 5060, lambda m, s: messages.append(m),
                             idle_timeout, **kwargs)
    transport.messages = messages
    transport.limit_log.log = FakeLog()
    return clock, transport


def accept(transport: SipTransport, host: str, port: int = 40000):
    """What the listener does for a connection from ``host``: its protocol, connected to
    a string transport, or None when the transport refused it."""
    factory = _TcpFactory(transport)
    addr = IPv4Address("TCP", host, port)
    proto = factory.buildProtocol(addr)
    if proto is None:
        return None
    wire = StringTransportWithDisconnection(peerAddress=addr)
    wire.protocol = proto
    proto.makeConnection(wire)
    return proto


def is_open(proto) -> bool:
    return proto.transport.connected and not proto.closing


OPTIONS = request_bytes(f"SIP/2.0/TCP {HOST}:5070;branch=z9hG4bKlimit1")


def test_per_address_cap_refuses_at_once_and_frees_on_close():
    _clock, transport = clock_transport(TcpLimits(max_connections=10, max_per_address=2))
    a = accept(transport, "192.0.2.1", 1)
    b = accept(transport, "192.0.2.1", 2)
    assert a is not None and b is not None
    assert accept(transport, "192.0.2.1", 3) is None
    assert is_open(a) and is_open(b)  # refusing the third evicted nobody
    assert accept(transport, "192.0.2.2", 1) is not None  # other addresses unaffected
    a.transport.loseConnection()
    assert accept(transport, "192.0.2.1", 4) is not None
    assert transport.limit_log.log.lines == [
        "SIP/TCP connection from 192.0.2.1 refused: it already has 2 open"]


def test_full_table_closes_the_longest_idle_connection_to_make_room():
    clock, transport = clock_transport(TcpLimits(max_connections=3, max_per_address=3))
    a = accept(transport, "192.0.2.1")
    clock.advance(1)
    b = accept(transport, "192.0.2.2")
    clock.advance(1)
    c = accept(transport, "192.0.2.3")
    clock.advance(1)
    a.dataReceived(OPTIONS)  # a complete message: a is idle again, but the most recent
    assert len(transport.messages) == 1
    d = accept(transport, "192.0.2.4")
    assert d is not None
    assert not is_open(b) and b.transport.disconnected  # aborted, not left to linger
    assert is_open(a) and is_open(c) and is_open(d)
    assert transport.limit_log.log.lines == [
        "SIP/TCP connection table full (3): closing the longest-idle connection, "
        "from 192.0.2.2, to take one from 192.0.2.4"]


def test_connections_in_a_message_are_not_evicted_and_a_busy_table_refuses():
    clock, transport = clock_transport(TcpLimits(max_connections=2, max_per_address=5))
    a = accept(transport, "192.0.2.1")
    a.dataReceived(OPTIONS[:40])  # oldest, but part-way through a message
    clock.advance(1)
    b = accept(transport, "192.0.2.2")
    c = accept(transport, "192.0.2.3")  # evicts b, the only idle one
    assert c is not None and not is_open(b) and is_open(a)
    c.dataReceived(OPTIONS[:10])
    assert accept(transport, "192.0.2.4") is None
    assert is_open(a) and is_open(c)
    assert transport.limit_log.log.lines[-1] == (
        "SIP/TCP connection from 192.0.2.4 refused: 2 connections open and none idle")


def test_slowloris_closed_at_the_deadline_while_an_idle_connection_follows_idle_timeout():
    clock, transport = clock_transport()  # the defaults: 10 s per message, 300 s idle
    idle = accept(transport, "192.0.2.1")
    idle.dataReceived(OPTIONS)
    slow = accept(transport, "192.0.2.2")
    for byte in range(10):  # one byte a second, starting at t=0
        slow.dataReceived(OPTIONS[byte:byte + 1])
        clock.advance(0.999 if byte == 9 else 1)
    assert is_open(slow)  # t=9.999: the deadline is 10 s after the first byte
    clock.advance(0.001)
    assert not is_open(slow) and slow.transport.disconnected
    assert is_open(idle)
    assert slow not in transport._all and len(transport._inbound) == 1
    for _ in range(9):  # CRLF keep-alives every 30 s are traffic, never a message
        clock.advance(30)
        idle.dataReceived(b"\r\n\r\n")
    assert is_open(idle)
    clock.advance(299.9)
    assert is_open(idle)
    clock.advance(0.1)
    assert not is_open(idle)  # the idle timeout, as before
    transport.limit_log.stop()
    assert not clock.getDelayedCalls()  # no timer of a closed connection is left behind


def test_deadline_restarts_at_each_message_and_covers_a_missing_body():
    clock, transport = clock_transport()
    conn = accept(transport, "192.0.2.1")
    conn.dataReceived(OPTIONS[:50])
    clock.advance(8)
    conn.dataReceived(OPTIONS[50:] + OPTIONS[:1])  # the first ends, the second begins
    assert len(transport.messages) == 1
    clock.advance(9.5)  # 17.5 s after the first message began, 9.5 after the second
    assert is_open(conn)
    conn.dataReceived(OPTIONS[1:])
    assert len(transport.messages) == 2
    clock.advance(60)  # between messages no deadline runs
    assert is_open(conn)
    invite = request_bytes(f"SIP/2.0/TCP {HOST}:5070;branch=z9hG4bKlimit2", "INVITE",
                           body=b"v=0\r\n" * 20)
    head = invite[:invite.index(b"\r\n\r\n") + 4]
    conn.dataReceived(head)  # headers complete, the body never comes
    clock.advance(9.9)
    assert is_open(conn)
    clock.advance(0.1)
    assert not is_open(conn)
    assert transport.limit_log.log.lines == [
        "closing SIP/TCP connection from 192.0.2.1: a message still incomplete 10 s after "
        "its first byte (0 bytes so far)"]


def test_message_deadline_zero_turns_it_off():
    clock, transport = clock_transport(TcpLimits(message_timeout=0))
    conn = accept(transport, "192.0.2.1")
    for byte in range(100):
        conn.dataReceived(OPTIONS[byte:byte + 1])
        clock.advance(1)
    assert is_open(conn)


# -- real sockets on 127.0.0.x ---------------------------------------------------------

class RealSocketTests(_Base):
    def make_limited(self, limits: TcpLimits, idle_timeout: float = 300.0) -> SipTransport:
        transport = SipTransport(reactor, HOST, 0, lambda m, s: None, idle_timeout,
                                 tcp_limits=limits)
        transport.start()
        transport.messages = []
        self.addCleanup(transport.stop)
        self.echo(transport)
        return transport

    @defer.inlineCallbacks
    def connect_from(self, port: int, source: str):
        peer = TcpPeer()
        yield protocol.ClientCreator(reactor, lambda: peer).connectTCP(
            HOST, port, bindAddress=(source, 0))

        def close():
            if peer.transport.connected:
                peer.transport.loseConnection()
                return peer.lost

        self.addCleanup(close)
        return peer

    @defer.inlineCallbacks
    def test_20kb_invite_over_udp_gets_a_real_answer(self):
        transport = self.make_transport()
        self.echo(transport, 486)
        peer, peer_port = self.udp_peer()
        body = b"a=x-padding:" + b"p" * 19_990 + b"\r\n"
        invite = request_bytes(f"SIP/2.0/UDP {HOST}:{peer_port};branch=z9hG4bKbig",
                               "INVITE", extra="Content-Type: application/sdp\r\n", body=body)
        assert len(invite) > 20_000
        peer.transport.write(invite, (HOST, transport.port))
        yield wait_until(lambda: peer.received)
        response = parse_datagram(peer.received[0][0])
        self.assertEqual(response.status, 486)  # the TU's answer, not the transport's 400
        self.assertEqual(transport.messages[0][0].body, body)

    def test_udp_receive_buffer_grown_for_large_datagrams(self):
        transport = self.make_transport()
        fresh = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(fresh.close)
        default = fresh.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
        # Linux doubles the size asked for (bookkeeping) and caps the request at rmem_max.
        wanted = max(default, 2 * min(UDP_RECEIVE_BUFFER, rmem_max))
        got = transport._udp_port.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.assertGreaterEqual(got, wanted)

    @defer.inlineCallbacks
    def test_connection_caps_enforced_on_real_sockets(self):
        transport = self.make_limited(TcpLimits(max_connections=3, max_per_address=2))
        first = yield self.connect_from(transport.port, "127.0.0.1")
        yield wait_until(lambda: len(transport._all) == 1)
        second = yield self.connect_from(transport.port, "127.0.0.1")
        refused = yield self.connect_from(transport.port, "127.0.0.1")
        yield refused.lost  # closed by the server at once
        other = yield self.connect_from(transport.port, "127.0.0.2")
        yield wait_until(lambda: len(transport._all) == 3)
        second.transport.write(OPTIONS)  # first is now the longest idle
        yield wait_until(lambda: second.items)
        newcomer = yield self.connect_from(transport.port, "127.0.0.3")
        yield first.lost  # evicted to make room
        for peer in (second, other, newcomer):
            self.assertTrue(peer.transport.connected)
        newcomer.transport.write(OPTIONS.replace(b"limit1", b"limit3"))
        yield wait_until(lambda: newcomer.items)
        self.assertEqual(newcomer.items[0].status, 200)

    @defer.inlineCallbacks
    def test_slowloris_closed_on_real_sockets(self):
        transport = self.make_limited(TcpLimits(message_timeout=0.5))
        idle = yield self.connect_from(transport.port, "127.0.0.1")
        idle.transport.write(OPTIONS)
        yield wait_until(lambda: idle.items)
        slow = yield self.connect_from(transport.port, "127.0.0.1")
        for byte in range(30):  # one byte every 0.1 s: the whole message would take 20 s
            if not slow.transport.connected:
                break
            slow.transport.write(OPTIONS[byte:byte + 1])
            yield sleep(0.1)
        self.assertFalse(slow.transport.connected)
        self.assertLess(byte, 15)  # closed about 0.5 s after its first byte
        self.assertTrue(idle.transport.connected)


# -- configuration: `ivr serve` flags reach the transport --------------------------------

def test_serve_flags_reach_the_servers_transport():
    from twisted.internet.testing import MemoryReactorClock

    from ivr.cli import build_parser
    from ivr.server import IvrServer, tcp_limits_from

    parser = build_parser()
    assert tcp_limits_from(parser.parse_args(["serve"])) == TcpLimits()
    args = parser.parse_args(["serve", "--sip-tcp-max-connections", "7",
                              "--sip-tcp-max-per-address", "0",
                              "--sip-tcp-message-timeout", "2.5"])
    limits = tcp_limits_from(args)
    assert limits == TcpLimits(max_connections=7, max_per_address=0, message_timeout=2.5)
    server = IvrServer(MemoryReactorClock(), sip=(HOST, 0), tcp_limits=limits)
    assert server.transport.tcp_limits is limits


def test_serve_refuses_negative_or_non_numeric_limits(capsys):
    from ivr.cli import build_parser

    for flag, value in (("--sip-tcp-max-connections", "-1"), ("--sip-tcp-max-per-address", "x"),
                        ("--sip-tcp-message-timeout", "nan"),
                        ("--sip-tcp-message-timeout", "inf")):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["serve", flag, value])
        assert "expected a number >= 0" in capsys.readouterr().err
