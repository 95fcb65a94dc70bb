"""SIP over TLS on real sockets (127.0.0.1, port 0): our UAC registers and calls our UAS
over TLS, the registered phone is reached over its own connection, and a server whose
certificate fails verification fails the request at once with the reason."""
from __future__ import annotations

import time

from twisted.internet import defer, protocol, reactor
from twisted.internet.ssl import CertificateOptions
from twisted.internet.task import Clock
from twisted.trial import unittest

from ivr.sip.auth import NonceManager
from ivr.sip.message import Request, make_response, parse_datagram
from ivr.sip.registrar import LocationService, Registrar
from ivr.sip.tls import ClientTrust, TlsSettings, server_identity
from ivr.sip.transport import Destination, SipTransport
from ivr.sip.ua import UserAgent, destination_for, new_branch
from ivr.sip.uri import parse_uri

from .test_registrar import Phone, config
from .test_transport import request_bytes, wait_until
from .test_ua_pair import ANSWER, OFFER, App, Listener

HOST = "127.0.0.1"


class _Tls(unittest.TestCase):
    timeout = 15

    def identity(self, name=HOST):
        return server_identity(data_dir=self.mktemp(), name=name)

    def transport(self, on_message=None, tls=None) -> SipTransport:
        messages: list = []
        t = SipTransport(reactor, HOST, 0, on_message or (lambda m, s: messages.append((m, s))),
                         tls=tls)
        t.messages = messages
        t.start()
        self.addCleanup(t.stop)
        return t

    def server(self, identity):
        return self.transport(tls=TlsSettings((HOST, 0), identity))

    def client(self, trusted_host, port, ca_file):
        trust = ClientTrust()
        trust.add(trusted_host, port, ca_file=ca_file)
        return self.transport(tls=TlsSettings(trust=trust))


def options(via_port: int, transport: str = "TLS") -> Request:
    return parse_datagram(request_bytes(
        f"SIP/2.0/{transport} {HOST}:{via_port};branch={new_branch()};rport"))


class TlsTransportTests(_Tls):
    @defer.inlineCallbacks
    def test_register_then_reached_over_its_own_connection_then_call_answered(self):
        identity = self.identity()
        srv = self.server(identity)
        srv_app = App()
        clock = Clock()  # the UAs' timers (none fire over a reliable transport here)
        srv_ua = UserAgent(clock, srv, srv_app, HOST, srv.port)
        srv_ua.registrar = Registrar(config(), NonceManager(b"k" * 32), LocationService(),
                                     clock)
        srv.on_message = srv_ua.receive
        cli = self.client(HOST, srv.tls_port, identity.cert_path)
        cli_app = App()
        cli_ua = UserAgent(clock, cli, cli_app, HOST, cli.port)
        cli.on_message = cli_ua.receive
        dest = Destination("TLS", HOST, srv.tls_port)
        self.assertEqual(cli_ua.via("TLS").split(";")[0], f"SIP/2.0/TLS {HOST}:{cli.port}")
        self.assertTrue(srv_ua.contact("TLS").endswith(f":{srv.tls_port};transport=tls>"))

        # REGISTER 2001 over TLS: challenged, then accepted.
        phone = Phone("2001", "demo2001", f"<sip:2001@{HOST}:{cli.port};transport=tls>")
        responses = []

        def send(request):
            request.headers.pop_first("Via")
            request.headers.prepend("Via", cli_ua.via("TLS"))
            cli_ua.layer.send_request(request, dest, on_response=responses.append,
                                      on_timeout=lambda: responses.append("timeout"))

        send(phone.request(auth=False))
        yield wait_until(lambda: responses, timeout=5)
        self.assertEqual(responses[0].status, 401)
        phone.learn(responses[0])
        send(phone.request())
        yield wait_until(lambda: len(responses) == 2, timeout=5)
        self.assertEqual(responses[1].status, 200)
        [binding] = srv_ua.registrar.lookup("2001")
        kind, host, port = binding.target()
        self.assertEqual((kind, host), ("TLS", HOST))
        [client_conn] = cli._all

        # The server calls the phone: over the connection the phone registered on.
        caller = Listener()
        srv_ua.invite(binding.uri, caller, OFFER, dest=Destination(kind, host, port))
        yield wait_until(lambda: ("answered", 200, ANSWER) in caller.events, timeout=5)
        self.assertEqual(cli._all, {client_conn})  # no second connection either way
        self.assertEqual(len(srv._all), 1)
        [session] = {id(s): s for s in cli_ua.sessions.values()}.values()
        self.assertIs(session.source.connection, client_conn)
        self.assertEqual(session.source.transport, "TLS")

        # The phone calls a sips: URI of the server and is answered.
        callee = Listener()
        cli_ua.invite(f"sips:echo@{HOST}:{srv.tls_port}", callee, OFFER)
        yield wait_until(lambda: ("answered", 200, ANSWER) in callee.events, timeout=5)
        self.assertEqual(cli._all, {client_conn})

    @defer.inlineCallbacks
    def test_nothing_readable_on_the_wire(self):
        """A plain-text SIP client on the TLS port gets no SIP back, and what our TLS
        client sends is not readable SIP on the wire."""
        identity = self.identity()
        srv = self.server(identity)
        got = []

        class Plain(protocol.Protocol):
            def dataReceived(self, data):
                got.append(data)

        peer = yield protocol.ClientCreator(reactor, Plain).connectTCP(HOST, srv.tls_port)
        peer.transport.write(request_bytes(f"SIP/2.0/TCP {HOST}:1;branch={new_branch()}"))
        yield wait_until(lambda: not peer.transport.connected or got, timeout=5)
        self.assertFalse(b"SIP/2.0" in b"".join(got))
        self.assertEqual(srv.messages, [])
        if peer.transport.connected:
            peer.transport.loseConnection()


class TlsWireTests(_Tls):
    @defer.inlineCallbacks
    def test_what_crosses_the_wire_is_not_readable_sip(self):
        """A relay between our TLS client and server records both directions: the
        request and its answer get through, and neither is readable on the wire."""
        from twisted.protocols import portforward
        identity = self.identity()
        srv = self.server(identity)
        srv.on_message = lambda m, s: (srv.messages.append((m, s)),
                                       srv.send_response(make_response(m, 200), s))
        wire: list[bytes] = []

        class Client(portforward.ProxyClient):
            def dataReceived(self, data):
                wire.append(data)
                super().dataReceived(data)

        class ClientFactory(portforward.ProxyClientFactory):
            protocol = Client

        class Server(portforward.ProxyServer):
            clientProtocolFactory = ClientFactory

            def dataReceived(self, data):
                wire.append(data)
                super().dataReceived(data)

        relay_factory = portforward.ProxyFactory(HOST, srv.tls_port)
        relay_factory.protocol = Server
        relay = reactor.listenTCP(0, relay_factory, interface=HOST)
        self.addCleanup(relay.stopListening)
        relay_port = relay.getHost().port
        cli = self.client(HOST, relay_port, identity.cert_path)
        request = options(cli.port)
        cli.send_request(request, Destination("TLS", HOST, relay_port))
        yield wait_until(lambda: cli.messages, timeout=5)
        self.assertEqual(cli.messages[0][0].status, 200)
        self.assertEqual(srv.messages[0][0].call_id, request.call_id)
        seen = b"".join(wire)
        self.assertGreater(len(seen), 500)
        for text in (b"SIP/2.0", b"OPTIONS", b"Via:", request.call_id.encode()):
            self.assertNotIn(text, seen)
        for conn in list(cli._all):
            conn.close()
        yield wait_until(lambda: not srv._all, timeout=5)


class TlsFailureTests(_Tls):
    @defer.inlineCallbacks
    def _fails_fast(self, cli, dest):
        started = time.monotonic()
        cli.send_request(options(cli.port), dest)
        yield wait_until(lambda: cli.messages, timeout=5)
        self.assertLess(time.monotonic() - started, 3)  # not Timer B's 32 s
        [(response, source)] = cli.messages
        self.assertEqual(response.status, 503)
        self.assertEqual(source.transport, "TLS")
        return response.reason

    @defer.inlineCallbacks
    def test_host_name_mismatch_fails_promptly_with_the_reason(self):
        identity = self.identity()  # for 127.0.0.1, trusted, but we call it "localhost"
        srv = self.server(identity)
        cli = self.client("localhost", srv.tls_port, identity.cert_path)
        reason = yield self._fails_fast(cli, Destination("TLS", "localhost", srv.tls_port))
        self.assertIn("TLS failed", reason)
        self.assertIn("name", reason.lower())
        self.assertEqual(srv.messages, [])

    @defer.inlineCallbacks
    def test_untrusted_certificate_fails_promptly(self):
        srv = self.server(self.identity())
        other = self.identity()  # a different self-signed certificate as the CA
        cli = self.client(HOST, srv.tls_port, other.cert_path)
        reason = yield self._fails_fast(cli, Destination("TLS", HOST, srv.tls_port))
        self.assertIn("certificate verify failed", reason)
        self.assertEqual(srv.messages, [])

    @defer.inlineCallbacks
    def test_system_cas_do_not_trust_a_self_signed_server(self):
        srv = self.server(self.identity())
        cli = self.transport()  # no ca_file: the system's CAs
        reason = yield self._fails_fast(cli, Destination("TLS", HOST, srv.tls_port))
        self.assertIn("certificate verify failed", reason)

    @defer.inlineCallbacks
    def test_nobody_listening_fails_promptly(self):
        srv = self.server(self.identity())
        port = srv.tls_port
        yield srv._tls_port.stopListening()
        srv._tls_port = None
        cli = self.transport()
        reason = yield self._fails_fast(cli, Destination("TLS", HOST, port))
        self.assertIn("TLS failed", reason)

    @defer.inlineCallbacks
    def test_silent_peer_is_closed_after_the_handshake_deadline(self):
        from ivr.sip.connection_limits import TcpLimits
        srv = SipTransport(reactor, HOST, 0, lambda m, s: None,
                           tcp_limits=TcpLimits(message_timeout=0.3),
                           tls=TlsSettings((HOST, 0), self.identity()))
        srv.start()
        self.addCleanup(srv.stop)
        lost = defer.Deferred()

        class Silent(protocol.Protocol):
            def connectionLost(self, reason=None):
                lost.callback(None)

        yield protocol.ClientCreator(reactor, Silent).connectTCP(HOST, srv.tls_port)
        yield wait_until(lambda: srv._all, timeout=2)
        started = time.monotonic()
        yield lost
        self.assertLess(time.monotonic() - started, 2)
        self.assertEqual(srv._all, set())


def test_sips_and_transport_tls_uris_go_over_tls():
    assert destination_for(parse_uri("sips:2001@example.com")) == \
        Destination("TLS", "example.com", 5061)
    assert destination_for(parse_uri("sip:2001@192.0.2.1:5071;transport=tls")) == \
        Destination("TLS", "192.0.2.1", 5071)
    assert destination_for(parse_uri("sip:2001@192.0.2.1")) == Destination("UDP", "192.0.2.1", 5060)


def test_server_options_are_tls12_or_later_with_aead_ciphers(tmp_path):
    from OpenSSL import SSL
    from ivr.sip.tls import server_options
    identity = server_identity(data_dir=tmp_path, name=HOST)
    options = server_options(identity)
    assert isinstance(options, CertificateOptions)
    ctx = options.getContext()
    conn = SSL.Connection(ctx)
    ciphers = conn.get_cipher_list()
    assert ciphers and all(("GCM" in c or "CHACHA20" in c) for c in ciphers), ciphers
    assert not any(c.startswith(("AES", "DES", "RC4")) for c in ciphers)  # RSA key exchange
    assert options._options & SSL.OP_NO_TLSv1 and options._options & SSL.OP_NO_TLSv1_1


class TlsTrunkTests(_Tls):
    @defer.inlineCallbacks
    def test_invite_to_a_trunk_failing_the_host_name_check_fails_at_once(self):
        """A trunk `transport: tls` at "localhost" whose certificate is for 127.0.0.1:
        the INVITE fails in well under a second with 503 and the reason, no hang."""
        from ivr.config.extensions import parse_extensions
        from ivr.sip.tls import tls_settings
        identity = self.identity()
        srv = self.server(identity)
        cfg, errors = parse_extensions(
            f"trunks:\n  carrier:\n    address: localhost:{srv.tls_port}\n"
            f"    transport: tls\n    ca_file: {identity.cert_path}\n", "x.yaml")
        assert errors == []
        trunk = cfg.trunks["carrier"]
        settings = tls_settings(None, None, None, self.mktemp(), HOST,
                                [(trunk.host, trunk.port, trunk.ca_file)])
        cli = self.transport(tls=settings)
        ua = UserAgent(Clock(), cli, App(), HOST, cli.port)
        cli.on_message = ua.receive
        caller = _Reasons()
        started = time.monotonic()
        ua.invite(f"sip:+14155550123@{trunk.host}:{trunk.port}", caller, OFFER,
                  dest=Destination(trunk.transport.upper(), trunk.host, trunk.port))
        yield wait_until(lambda: caller.events, timeout=5)
        self.assertLess(time.monotonic() - started, 3)
        [(event, status, reason)] = caller.events
        self.assertEqual((event, status), ("failed", 503))
        self.assertIn("TLS failed: certificate name check failed", reason)
        self.assertEqual(srv.messages, [])


class _Reasons(Listener):
    def on_failed(self, session, status, reason):
        self.events.append(("failed", status, reason))
