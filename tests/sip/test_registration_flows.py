"""Registrations end with the connection they came over (issue #16): a browser registered
over WebSocket (or a phone over TCP/TLS from an ephemeral port) cannot be reached once
that connection has closed, so its bindings go at once instead of failing calls (503)
until they expire.  The registrar on task.Clock, then the transport over a real
WebSocket."""
from __future__ import annotations

from twisted.internet import defer
from twisted.internet.task import Clock

from ivr.sip.auth import NonceManager
from ivr.sip.registrar import LocationService, Registrar
from ivr.sip.transport import Source

from .test_registrar import Phone, config, register
from .test_transport import wait_until
from . import test_websocket as ws
from .test_websocket import CONTACT

HOST = "198.51.100.9"


class Flow:
    """Stands for a TCP/TLS/WebSocket connection (the registrar only compares them)."""


def registrar():
    clock = Clock()
    clock.advance(1_700_000_000)
    return clock, Registrar(config(), NonceManager(b"k" * 32), LocationService(), clock)


def uris(reg, aor):
    return sorted(b.uri for b in reg.lookup(aor) if not b.static)


def test_closing_a_websocket_removes_only_the_bindings_made_over_it():
    clock, reg = registrar()
    browser, other = Flow(), Flow()
    ws = Source("WS", HOST, 50001, browser)
    assert register(reg, Phone("2001", "demo2001", CONTACT), ws).status == 200
    assert register(reg, Phone("2001", "demo2001", "<sip:2001@10.0.0.5:5060>", "c2"),
                    Source("UDP", HOST, 5060)).status == 200
    assert register(reg, Phone("2002", "demo2002", "<sip:b@x.invalid;transport=ws>", "c3"),
                    Source("WSS", HOST, 50002, other)).status == 200
    assert len(uris(reg, "2001")) == 2

    gone = reg.connection_closed(browser)

    assert [b.uri for b in gone] == ["sip:k9a3hc2e@df7jal23ls0d.invalid;transport=ws"]
    assert uris(reg, "2001") == ["sip:2001@10.0.0.5:5060"]  # the UDP phone stays
    assert uris(reg, "2002") == ["sip:b@x.invalid;transport=ws"]  # another connection's
    assert reg.connection_closed(browser) == []  # nothing left to remove
    assert [b.aor for b in reg.connection_closed(other)] == ["2002"]
    assert reg.location._by_flow == {}


def test_a_binding_refreshed_over_a_new_connection_survives_the_old_ones_close():
    clock, reg = registrar()
    first, second = Flow(), Flow()
    phone = Phone("2001", "demo2001", CONTACT)
    assert register(reg, phone, Source("WS", HOST, 50001, first)).status == 200
    clock.advance(30)
    assert register(reg, phone, Source("WS", HOST, 50003, second)).status == 200
    assert reg.connection_closed(first) == []
    [binding] = reg.lookup("2001")
    assert binding.received.connection is second
    assert len(reg.connection_closed(second)) == 1
    assert reg.lookup("2001") == []


def test_stream_phones_reachable_only_over_the_connection_go_the_others_stay():
    clock, reg = registrar()
    tcp, tls = Flow(), Flow()
    # Connected from an ephemeral port, listening on 5070: unreachable once closed.
    assert register(reg, Phone("2001", "demo2001", "<sip:2001@198.51.100.9:5070;transport=tcp>"),
                    Source("TCP", HOST, 41234, tcp)).status == 200
    # Connected from the port it listens on (its Contact): a new connection reaches it.
    assert register(reg, Phone("2002", "demo2002", "<sip:2002@198.51.100.9;transport=tls>"),
                    Source("TLS", HOST, 5061, tls)).status == 200
    assert [b.aor for b in reg.connection_closed(tcp)] == ["2001"]
    assert reg.connection_closed(tls) == []
    assert uris(reg, "2001") == []
    assert uris(reg, "2002") == ["sip:2002@198.51.100.9;transport=tls"]


def test_expired_and_unregistered_bindings_leave_no_flow_behind():
    clock, reg = registrar()
    flow = Flow()
    phone = Phone("2001", "demo2001", CONTACT)
    assert register(reg, phone, Source("WS", HOST, 50001, flow), expires=60).status == 200
    clock.advance(61)
    reg.expire()
    assert reg.location._by_flow == {}
    assert register(reg, phone, Source("WS", HOST, 50001, flow)).status == 200
    assert reg.handle(phone.request(expires=0), Source("WS", HOST, 50001, flow)).status == 200
    assert reg.location._by_flow == {}
    assert reg.connection_closed(flow) == []


class ClosedWebSocketTests(ws._Ws):
    """Over a real WebSocket: the transport tells its observers a connection has closed."""

    registered = ws.RegisterAndCallTests.registered

    @defer.inlineCallbacks
    def test_a_browser_closing_its_websocket_is_no_longer_registered(self):
        closed = []
        client = yield self.registered()
        self.sip.on_connection_closed.append(
            lambda conn: closed.extend(self.ua.registrar.connection_closed(conn)))
        [binding] = self.ua.registrar.lookup("2001")
        self.assertEqual(binding.target()[0], "WS")
        client.transport.loseConnection()
        yield wait_until(lambda: closed, timeout=5)
        self.assertEqual([b.aor for b in closed], ["2001"])
        self.assertEqual(self.ua.registrar.lookup("2001"), [])
