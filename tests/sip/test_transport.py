"""SipTransport on real sockets (127.0.0.1, port 0) with the real reactor."""
from __future__ import annotations

from twisted.internet import defer, protocol, reactor
from twisted.internet.protocol import DatagramProtocol
from twisted.trial import unittest

from ivr.sip.message import StreamParser, make_response, parse_datagram
from ivr.sip.transport import Destination, SipTransport
from ivr.sip.ua import new_branch

HOST = "127.0.0.1"


def wait_until(predicate, timeout=3.0):
    d = defer.Deferred()
    state = {"elapsed": 0.0}

    def check():
        if predicate():
            d.callback(None)
        elif state["elapsed"] > timeout:
            d.errback(AssertionError("timed out waiting"))
        else:
            state["elapsed"] += 0.01
            reactor.callLater(0.01, check)

    check()
    return d


def sleep(seconds):
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


def request_bytes(via: str, method: str = "OPTIONS", extra: str = "", body: bytes = b"",
                  content_length: str | None = None) -> bytes:
    length = str(len(body)) if content_length is None else content_length
    head = (f"{method} sip:ivr@{HOST} SIP/2.0\r\n"
            f"Via: {via}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:test@{HOST}>;tag=f1\r\n"
            f"To: <sip:ivr@{HOST}>\r\n"
            f"Call-ID: {new_branch()}@test\r\n"
            f"CSeq: 1 {method}\r\n"
            f"{extra}"
            f"Content-Length: {length}\r\n\r\n")
    return head.encode() + body


class UdpPeer(DatagramProtocol):
    def __init__(self):
        self.received: list[tuple[bytes, tuple]] = []

    def datagramReceived(self, data, addr):
        self.received.append((data, addr))


class TcpPeer(protocol.Protocol):
    def __init__(self):
        self.data = b""
        self.lost = defer.Deferred()
        self.parser = StreamParser()
        self.items: list = []

    def dataReceived(self, data):
        self.data += data
        self.items.extend(self.parser.feed(data))

    def connectionLost(self, reason=None):
        self.lost.callback(None)


class _Base(unittest.TestCase):
    timeout = 10

    def make_transport(self, on_message=None, idle_timeout=300.0) -> SipTransport:
        messages: list = []

        def default(message, source):
            messages.append((message, source))

        transport = SipTransport(reactor, HOST, 0, on_message or default, idle_timeout)
        transport.start()
        transport.messages = messages
        self.addCleanup(transport.stop)
        return transport

    def udp_peer(self) -> tuple[UdpPeer, int]:
        peer = UdpPeer()
        port = reactor.listenUDP(0, peer, interface=HOST)
        self.addCleanup(port.stopListening)
        return peer, port.getHost().port

    @defer.inlineCallbacks
    def tcp_peer(self, port: int):
        peer = TcpPeer()
        yield protocol.ClientCreator(reactor, lambda: peer).connectTCP(HOST, port)

        def close():
            if peer.transport.connected:
                peer.transport.loseConnection()
                return peer.lost

        self.addCleanup(close)
        return peer

    def echo(self, transport: SipTransport, status: int = 200):
        """A TU that answers every request with ``status``."""

        def on_message(message, source):
            transport.messages.append((message, source))
            transport.send_response(make_response(message, status), source)

        transport.on_message = on_message


class UdpTests(_Base):
    @defer.inlineCallbacks
    def test_rport_filled_and_response_goes_to_the_source_port(self):
        transport = self.make_transport()
        self.echo(transport)
        peer, peer_port = self.udp_peer()
        via = f"SIP/2.0/UDP 192.0.2.1:5099;branch={new_branch()};rport"
        peer.transport.write(request_bytes(via), (HOST, transport.port))
        yield wait_until(lambda: peer.received)
        (message, source), = transport.messages
        self.assertEqual((source.transport, source.host, source.port), ("UDP", HOST, peer_port))
        top = message.top_via
        self.assertEqual(top.param("received"), HOST)
        self.assertEqual(top.param("rport"), str(peer_port))
        self.assertEqual(top.host, "192.0.2.1")  # sent-by untouched
        data, addr = peer.received[0]
        self.assertEqual(addr, (HOST, transport.port))
        response = parse_datagram(data)
        self.assertEqual(response.status, 200)
        self.assertEqual(response.top_via.param("rport"), str(peer_port))

    @defer.inlineCallbacks
    def test_received_added_when_sent_by_differs(self):
        transport = self.make_transport()
        self.echo(transport)
        peer, peer_port = self.udp_peer()
        # sent-by is a name, not the packet's address: received is added, and the
        # response goes to received + the sent-by port (no rport).
        via = f"SIP/2.0/UDP localhost:{peer_port};branch={new_branch()}"
        peer.transport.write(request_bytes(via), (HOST, transport.port))
        yield wait_until(lambda: peer.received)
        top = transport.messages[0][0].top_via
        self.assertEqual(top.param("received"), HOST)
        self.assertIsNone(top.param("rport"))
        self.assertEqual(parse_datagram(peer.received[0][0]).status, 200)

    @defer.inlineCallbacks
    def test_via_untouched_when_sent_by_matches(self):
        transport = self.make_transport()
        self.echo(transport)
        peer, peer_port = self.udp_peer()
        via = f"SIP/2.0/UDP {HOST}:{peer_port};branch={new_branch()}"
        peer.transport.write(request_bytes(via), (HOST, transport.port))
        yield wait_until(lambda: peer.received)
        self.assertEqual(transport.messages[0][0].headers.get("Via"), via)

    @defer.inlineCallbacks
    def test_malformed_request_gets_400_from_partial_headers(self):
        transport = self.make_transport()
        peer, peer_port = self.udp_peer()
        via = f"SIP/2.0/UDP {HOST}:{peer_port};branch={new_branch()};rport"
        data = request_bytes(via, extra="This line has no colon\r\n")
        peer.transport.write(data, (HOST, transport.port))
        yield wait_until(lambda: peer.received)
        response = parse_datagram(peer.received[0][0])
        self.assertEqual(response.status, 400)
        self.assertEqual(response.cseq, (1, "OPTIONS"))
        self.assertEqual(response.top_via.param("rport"), str(peer_port))
        self.assertEqual(transport.messages, [])

    @defer.inlineCallbacks
    def test_garbage_and_bad_responses_dropped(self):
        transport = self.make_transport()
        peer, peer_port = self.udp_peer()
        for junk in (b"\x00\xff\xfe garbage \r\n\r\n", b"SIP/2.0 99 Nope\r\n\r\n",
                     b"\r\n\r\n", b"INVITE\r\n\r\n", b"x" * 2000,
                     b"SIP/2.0 200 OK\r\nBroken header\r\n\r\n",
                     b"SIP/3.0 200 OK\r\n\r\n"):
            peer.transport.write(junk, (HOST, transport.port))
        # Then a good request: still served.
        self.echo(transport)
        via = f"SIP/2.0/UDP {HOST}:{peer_port};branch={new_branch()};rport"
        peer.transport.write(request_bytes(via), (HOST, transport.port))
        yield wait_until(lambda: peer.received)
        yield sleep(0.05)
        self.assertEqual([parse_datagram(d).status for d, _ in peer.received], [200])
        self.assertEqual(len(transport.messages), 1)
        self.assertEqual(self.flushLoggedErrors(), [])

    @defer.inlineCallbacks
    def test_tu_exception_never_escapes(self):
        calls = []

        def on_message(message, source):
            calls.append(message)
            if len(calls) == 1:
                raise ZeroDivisionError("TU bug")
            transport.send_response(make_response(message, 200), source)

        transport = self.make_transport(on_message)
        peer, peer_port = self.udp_peer()
        for _ in range(2):
            via = f"SIP/2.0/UDP {HOST}:{peer_port};branch={new_branch()};rport"
            peer.transport.write(request_bytes(via), (HOST, transport.port))
        yield wait_until(lambda: peer.received)
        self.assertEqual(len(calls), 2)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(parse_datagram(peer.received[0][0]).status, 200)

    @defer.inlineCallbacks
    def test_send_request_over_udp(self):
        a = self.make_transport()
        b = self.make_transport()
        via = f"SIP/2.0/UDP {HOST}:{a.port};branch={new_branch()};rport"
        a.send_request(parse_datagram(request_bytes(via)), Destination("UDP", HOST, b.port))
        yield wait_until(lambda: b.messages)
        message, source = b.messages[0]
        self.assertEqual((source.transport, source.port), ("UDP", a.port))
        self.assertEqual(message.method, "OPTIONS")


class TcpTests(_Base):
    @defer.inlineCallbacks
    def test_two_requests_on_one_connection_answered_on_it(self):
        transport = self.make_transport()
        self.echo(transport)
        peer = yield self.tcp_peer(transport.port)
        via = "SIP/2.0/TCP 192.0.2.1:5099;branch={};rport"
        data = (request_bytes(via.format(new_branch()), body=b"hello", extra="Content-Type: text/plain\r\n")
                + request_bytes(via.format(new_branch())))
        peer.transport.write(data)
        yield wait_until(lambda: len(peer.items) == 2)
        self.assertEqual([r.status for r in peer.items], [200, 200])
        (m1, s1), (m2, s2) = transport.messages
        self.assertEqual(m1.body, b"hello")
        self.assertEqual(s1.transport, "TCP")
        self.assertIs(s1.connection, s2.connection)
        self.assertEqual(s1.port, peer.transport.getHost().port)
        self.assertEqual(m1.top_via.param("rport"), str(s1.port))

    @defer.inlineCallbacks
    def test_request_fed_byte_by_byte(self):
        transport = self.make_transport()
        self.echo(transport)
        peer = yield self.tcp_peer(transport.port)
        data = request_bytes(f"SIP/2.0/TCP {HOST}:1;branch={new_branch()}", body=b"abc",
                             extra="Content-Type: text/plain\r\n")
        for i in range(len(data)):
            peer.transport.write(data[i:i + 1])
        yield wait_until(lambda: peer.items)
        self.assertEqual(transport.messages[0][0].body, b"abc")

    @defer.inlineCallbacks
    def test_connection_reused_for_requests_to_the_same_peer(self):
        a = self.make_transport()
        b = self.make_transport()
        dest = Destination("TCP", HOST, b.port)

        def req():
            via = f"SIP/2.0/TCP {HOST}:{a.port};branch={new_branch()};rport"
            return parse_datagram(request_bytes(via))

        # Two back to back (the second while the connection is still being made) ...
        a.send_request(req(), dest)
        a.send_request(req(), dest)
        yield wait_until(lambda: len(b.messages) == 2)
        # ... and one later.
        a.send_request(req(), dest)
        yield wait_until(lambda: len(b.messages) == 3)
        connections = {id(source.connection) for _, source in b.messages}
        self.assertEqual(len(connections), 1)
        self.assertEqual(len(a._connections), 1)
        # The response to a request that came over TCP goes back on that connection.
        message, source = b.messages[0]
        b.send_response(make_response(message, 200), source)
        yield wait_until(lambda: len(a.messages) == 1)
        self.assertEqual(a.messages[0][0].status, 200)
        self.assertEqual(a.messages[0][1].port, b.port)

    @defer.inlineCallbacks
    def test_response_reopens_to_sent_by_port_when_connection_closed(self):
        transport = self.make_transport()
        # A listener standing for the client's SIP port (the Via sent-by).
        listener_peers = []

        class Factory(protocol.Factory):
            def buildProtocol(self, addr):
                peer = TcpPeer()
                listener_peers.append(peer)
                return peer

        port = reactor.listenTCP(0, Factory(), interface=HOST)
        self.addCleanup(port.stopListening)
        sent_by = port.getHost().port
        client = yield self.tcp_peer(transport.port)
        client.transport.write(request_bytes(f"SIP/2.0/TCP {HOST}:{sent_by};branch={new_branch()};rport"))
        yield wait_until(lambda: transport.messages)
        client.transport.loseConnection()
        yield client.lost
        yield wait_until(lambda: not transport._all)
        message, source = transport.messages[0]
        transport.send_response(make_response(message, 200), source)
        yield wait_until(lambda: listener_peers and listener_peers[0].items)
        self.assertEqual(listener_peers[0].items[0].status, 200)
        for peer in listener_peers:
            peer.transport.loseConnection()
            yield peer.lost

    @defer.inlineCallbacks
    def test_idle_timeout_closes(self):
        transport = self.make_transport(idle_timeout=0.2)
        peer = yield self.tcp_peer(transport.port)
        yield wait_until(lambda: transport._all)
        yield peer.lost  # the transport closed it
        self.assertEqual(transport._all, set())
        self.assertEqual(transport._connections, {})

    @defer.inlineCallbacks
    def test_traffic_keeps_the_connection(self):
        transport = self.make_transport(idle_timeout=0.3)
        peer = yield self.tcp_peer(transport.port)
        for _ in range(4):
            yield sleep(0.15)
            peer.transport.write(b"\r\n\r\n")
        yield wait_until(lambda: len(peer.data) == 8)
        self.assertTrue(peer.transport.connected)
        self.assertEqual(peer.data, b"\r\n" * 4)
        yield peer.lost  # and once quiet, it is closed

    @defer.inlineCallbacks
    def test_framing_error_gets_400_then_close(self):
        transport = self.make_transport()
        peer = yield self.tcp_peer(transport.port)
        data = request_bytes(f"SIP/2.0/TCP {HOST}:1;branch={new_branch()}", content_length="-5")
        peer.transport.write(data + b"more bytes that must not be read")
        yield peer.lost
        self.assertEqual([r.status for r in peer.items], [400])
        self.assertEqual(transport.messages, [])

    @defer.inlineCallbacks
    def test_header_section_over_limit_closes(self):
        transport = self.make_transport()
        peer = yield self.tcp_peer(transport.port)
        head = request_bytes(f"SIP/2.0/TCP {HOST}:1;branch={new_branch()}")[:-4]
        peer.transport.write(head + b"\r\nX-Filler: " + b"a" * (70 * 1024))
        yield peer.lost
        self.assertEqual(peer.data, b"")
        self.assertEqual(transport.messages, [])

    @defer.inlineCallbacks
    def test_crlf_ping_gets_crlf_pong(self):
        transport = self.make_transport()
        peer = yield self.tcp_peer(transport.port)
        peer.transport.write(b"\r\n\r\n")
        yield wait_until(lambda: peer.data)
        self.assertEqual(peer.data, b"\r\n")
        self.assertTrue(peer.transport.connected)

    @defer.inlineCallbacks
    def test_tu_exception_over_tcp_keeps_the_connection(self):
        def on_message(message, source):
            raise ValueError("TU bug")

        transport = self.make_transport(on_message)
        peer = yield self.tcp_peer(transport.port)
        peer.transport.write(request_bytes(f"SIP/2.0/TCP {HOST}:1;branch={new_branch()}"))
        yield wait_until(lambda: self.flushLoggedErrors(ValueError))
        peer.transport.write(b"\r\n\r\n")
        yield wait_until(lambda: peer.data == b"\r\n")
        self.assertTrue(peer.transport.connected)

    @defer.inlineCallbacks
    def test_stop_closes_everything(self):
        a = self.make_transport()
        b = self.make_transport()
        via = f"SIP/2.0/TCP {HOST}:{a.port};branch={new_branch()}"
        a.send_request(parse_datagram(request_bytes(via)), Destination("TCP", HOST, b.port))
        yield wait_until(lambda: b.messages)
        yield a.stop()
        self.assertEqual(a._all, set())
        yield wait_until(lambda: not b._all)
