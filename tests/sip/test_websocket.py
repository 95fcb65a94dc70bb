"""SIP over WebSocket (RFC 7118) on real sockets (127.0.0.1, port 0), with a wsproto
client: the ``sip`` subprotocol, the origin check, REGISTER with digest then the server
calling the browser back over its own connection (by its ``.invalid`` alias for in-dialog
requests), and the connection limits."""
from __future__ import annotations

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial import unittest
from twisted.web import resource, server as web_server
from wsproto.events import AcceptConnection, RejectConnection

from ivr.sip.auth import NonceManager
from ivr.sip.connection_limits import TcpLimits
from ivr.sip.message import Response, make_response, serialize
from ivr.sip.registrar import LocationService, Registrar
from ivr.sip.transport import Destination, SipTransport
from ivr.sip.ua import UserAgent, new_branch
from ivr.sip.websocket import MAX_MESSAGE, SipWebSocketResource

from .test_registrar import Phone, config
from .test_transport import wait_until
from .test_ua_pair import ANSWER, OFFER, App, Listener
from .ws_client import open_ws

HOST = "127.0.0.1"
ALIAS = "df7jal23ls0d.invalid"
CONTACT = f"<sip:k9a3hc2e@{ALIAS};transport=ws>"


class _Ws(unittest.TestCase):
    timeout = 15

    def serve(self, origins=(), limits=TcpLimits(), idle_timeout=300.0):
        """Our SIP stack with a registrar, and an HTTP site with /sip."""
        self.sip = SipTransport(reactor, HOST, 0, lambda m, s: None, tcp_limits=limits,
                                idle_timeout=idle_timeout)
        self.sip.start()
        self.addCleanup(self.sip.stop)
        clock = Clock()
        self.app = App()
        self.ua = UserAgent(clock, self.sip, self.app, HOST, self.sip.port)
        self.ua.registrar = Registrar(config(), NonceManager(b"k" * 32), LocationService(),
                                      clock)
        self.sip.on_message = self.ua.receive
        root = resource.Resource()
        root.putChild(b"sip", SipWebSocketResource(self.sip, origins, "WS"))
        site = web_server.Site(root)
        site.noisy = False
        self.http = reactor.listenTCP(0, site, interface=HOST)
        self.addCleanup(self.http.stopListening)
        self.port = self.http.getHost().port
        self.sip.ws_ports["WS"] = self.port

    @defer.inlineCallbacks
    def client(self, **kwargs):
        client = open_ws(self.port, **kwargs)
        self.addCleanup(lambda: client.transport.loseConnection() if client.transport else None)
        event = yield client.accepted
        return client, event


class HandshakeTests(_Ws):
    @defer.inlineCallbacks
    def test_sip_subprotocol_is_negotiated(self):
        self.serve()
        _client, event = yield self.client()
        self.assertIsInstance(event, AcceptConnection)
        self.assertEqual(event.subprotocol, "sip")

    @defer.inlineCallbacks
    def test_without_the_sip_subprotocol_400(self):
        self.serve()
        _client, event = yield self.client(subprotocols=["chat"])
        self.assertIsInstance(event, RejectConnection)
        self.assertEqual(event.status_code, 400)
        self.assertEqual(len(self.sip._all), 0)

    @defer.inlineCallbacks
    def test_origin_other_than_allowed_or_own_gets_403(self):
        self.serve(origins=["https://shop.example"])
        _client, event = yield self.client(origin="https://evil.example")
        self.assertIsInstance(event, RejectConnection)
        self.assertEqual(event.status_code, 403)
        for origin in ("https://shop.example", f"http://{HOST}:{self.port}", None):
            _client, event = yield self.client(origin=origin)
            self.assertIsInstance(event, AcceptConnection, origin)
        _client, event = yield self.client(origin="null")
        self.assertEqual(event.status_code, 403)

    @defer.inlineCallbacks
    def test_plain_get_is_not_upgraded(self):
        self.serve()
        import treq
        response = yield treq.get(f"http://{HOST}:{self.port}/sip", persistent=False)
        yield treq.content(response)
        self.assertEqual(response.code, 426)
        self.assertEqual(response.headers.getRawHeaders(b"sec-websocket-version"), [b"13"])


def register_request(phone: Phone, auth: bool):
    request = phone.request(auth=auth)
    request.headers.pop_first("Via")
    request.headers.prepend("Via", f"SIP/2.0/WS {ALIAS};branch={new_branch()}")
    return request


class RegisterAndCallTests(_Ws):
    @defer.inlineCallbacks
    def registered(self):
        self.serve()
        client, _ = yield self.client()
        phone = Phone("2001", "demo2001", CONTACT)
        client.send(serialize(register_request(phone, auth=False)))
        yield wait_until(lambda: client.messages, timeout=5)
        self.assertEqual(client.messages[0].status, 401)
        phone.learn(client.messages[0])
        client.send(serialize(register_request(phone, auth=True)))
        yield wait_until(lambda: len(client.messages) == 2, timeout=5)
        self.assertEqual(client.messages[1].status, 200)
        return client

    @defer.inlineCallbacks
    def test_register_with_digest_then_called_back_over_the_same_connection(self):
        client = yield self.registered()
        [binding] = self.ua.registrar.lookup("2001")
        kind, host, port = binding.target()
        self.assertEqual((kind, host), ("WS", HOST))
        self.assertEqual(binding.uri, f"sip:k9a3hc2e@{ALIAS};transport=ws")
        [conn] = self.sip._all

        caller = Listener()
        session = self.ua.invite(binding.uri, caller, OFFER, dest=Destination(kind, host, port))
        yield wait_until(lambda: len(client.messages) == 3, timeout=5)
        invite = client.messages[2]
        self.assertEqual(invite.method, "INVITE")
        self.assertEqual(invite.uri, binding.uri)
        self.assertTrue(invite.headers.get("Via").startswith(f"SIP/2.0/WS {HOST}:{self.port};"))
        self.assertEqual(invite.headers.get("Contact"),
                         f"<sip:ivr@{HOST}:{self.port};transport=ws>")
        ok = make_response(invite, 200, to_tag="browser1",
                           extra=[("Contact", CONTACT), ("Content-Type", "application/sdp")])
        ok.body = ANSWER
        client.send(serialize(ok))
        yield wait_until(lambda: ("answered", 200, ANSWER) in caller.events, timeout=5)
        # The ACK and the BYE go to the dialog's remote target, the browser's .invalid
        # Contact: the transport finds its connection by that alias.
        yield wait_until(lambda: any(getattr(m, "method", "") == "ACK"
                                     for m in client.messages), timeout=5)
        session.bye()
        yield wait_until(lambda: any(getattr(m, "method", "") == "BYE"
                                     for m in client.messages), timeout=5)
        self.assertEqual(self.sip._all, {conn})

    @defer.inlineCallbacks
    def test_invite_from_the_browser_answered_over_its_connection(self):
        client = yield self.registered()
        phone = Phone("2001", "demo2001", CONTACT)
        invite = phone.request(auth=False)
        invite.method = "INVITE"
        invite.uri = f"sip:echo@{HOST}"
        invite.headers.pop_first("Via")
        invite.headers.prepend("Via", f"SIP/2.0/WS {ALIAS};branch={new_branch()}")
        invite.headers.pop_first("CSeq")
        invite.headers.add("CSeq", "1 INVITE")
        invite.headers.add("Content-Type", "application/sdp")
        invite.headers.pop_first("From")
        invite.headers.add("From", "<sip:2001@ivr.local>;tag=b1")
        invite.headers.pop_first("Call-ID")
        invite.headers.add("Call-ID", "call-1@browser")
        invite.body = OFFER
        client.send(serialize(invite))
        yield wait_until(lambda: any(isinstance(m, Response) and m.status == 200
                                     and m.cseq[1] == "INVITE" for m in client.messages),
                         timeout=5)
        ok = [m for m in client.messages if isinstance(m, Response) and m.status == 200][-1]
        self.assertEqual(ok.body, ANSWER)
        self.assertEqual(ok.headers.get("Contact"), f"<sip:ivr@{HOST}:{self.port};transport=ws>")
        self.assertIn(f"received={HOST}", ok.headers.get("Via"))

    @defer.inlineCallbacks
    def test_a_request_for_a_browser_gone_fails_at_once_with_503(self):
        client = yield self.registered()
        [binding] = self.ua.registrar.lookup("2001")
        client.transport.loseConnection()
        yield client.closed
        yield wait_until(lambda: not self.sip._all, timeout=5)
        caller = Listener()
        self.ua.invite(binding.uri, caller, OFFER, dest=Destination(*binding.target()))
        yield wait_until(lambda: ("failed", 503) in caller.events, timeout=2)

    @defer.inlineCallbacks
    def test_keepalive_crlf_is_answered(self):
        self.serve()
        client, _ = yield self.client()
        client.send("\r\n\r\n")
        yield wait_until(lambda: client.texts, timeout=5)
        self.assertEqual(client.texts, [b"\r\n"])


    @defer.inlineCallbacks
    def test_malformed_request_answered_400_over_the_connection(self):
        self.serve()
        client, _ = yield self.client()
        client.send(f"OPTIONS sip:ivr@{HOST} SIP/2.0\r\n"
                    f"Via: SIP/2.0/WS {ALIAS};branch={new_branch()}\r\n"
                    "From: <sip:a@b>;tag=1\r\nTo: <sip:ivr@h>\r\nCall-ID: x\r\n"
                    "CSeq: one OPTIONS\r\nContent-Length: 0\r\n\r\n")
        yield wait_until(lambda: client.messages, timeout=5)
        self.assertEqual(client.messages[0].status, 400)
        self.assertEqual(len(self.sip._all), 1)  # the connection stays


class LimitTests(_Ws):
    @defer.inlineCallbacks
    def test_per_address_limit_refuses_the_upgrade_with_503(self):
        self.serve(limits=TcpLimits(max_per_address=1))
        _first, event = yield self.client()
        self.assertIsInstance(event, AcceptConnection)
        _second, event = yield self.client()
        self.assertIsInstance(event, RejectConnection)
        self.assertEqual(event.status_code, 503)
        self.assertEqual(len(self.sip._all), 1)

    @defer.inlineCallbacks
    def test_message_over_the_size_limit_closes_the_connection(self):
        self.serve()
        client, _ = yield self.client()
        client.send(b"x" * (MAX_MESSAGE + 1), binary=True)
        yield client.closed
        self.assertEqual(client.close_code, 1009)

    @defer.inlineCallbacks
    def test_message_not_finished_in_time_closes_the_connection(self):
        self.serve(limits=TcpLimits(message_timeout=0.3))
        client, _ = yield self.client()
        from wsproto.events import TextMessage
        client.transport.write(client.ws.send(TextMessage(data="OPTIONS sip:",
                                                          message_finished=False)))
        started = reactor.seconds()
        yield client.closed
        self.assertGreaterEqual(reactor.seconds() - started, 0.25)
        self.assertFalse(self.sip._all)

    @defer.inlineCallbacks
    def test_idle_connection_closed(self):
        self.serve(idle_timeout=0.3)
        client, _ = yield self.client()
        yield client.closed
        self.assertEqual(client.close_code, 1001)


def test_origins_are_normalised_and_bad_ones_refused():
    import pytest
    from ivr.cli import build_parser
    from ivr.sip.websocket import OriginError, normalise_origin
    assert normalise_origin("HTTPS://Shop.Example:443") == "https://shop.example"
    assert normalise_origin("http://10.0.0.1:8080/") == "http://10.0.0.1:8080"
    assert normalise_origin("*") == "*"
    for bad in ("shop.example", "ftp://x", "https://x/page", "https://x:99999", "null"):
        with pytest.raises(OriginError):
            normalise_origin(bad)
    args = build_parser().parse_args(["serve", "--ws-origin", "https://A.example",
                                      "--ws-origin", "*"])
    assert args.ws_origin == ["https://a.example", "*"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--ws-origin", "https://a.example/path"])


def test_ws_uris_route_to_ws_destinations():
    from ivr.sip.routing import destination_for
    from ivr.sip.uri import parse_uri
    assert destination_for(parse_uri(f"sip:x@{ALIAS};transport=ws")) == \
        Destination("WS", ALIAS, 80)
    assert destination_for(parse_uri("sip:x@h.invalid:8443;transport=WSS")) == \
        Destination("WSS", "h.invalid", 8443)
