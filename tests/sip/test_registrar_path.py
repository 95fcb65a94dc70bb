"""RFC 3327 Path: a REGISTER relayed by a proxy in front of a farm (Kamailio's add_path)
is stored with its Path, and requests to that phone carry it as a pre-loaded Route set and
go to the proxy.  Registrar and user agent on ``task.Clock``."""
from __future__ import annotations

from twisted.internet.task import Clock

from ivr.sip.auth import NonceManager
from ivr.sip.headers import Headers
from ivr.sip.message import Request
from ivr.sip.registrar import LocationService, Registrar
from ivr.sip.throttle import Throttle
from ivr.sip.transport import Destination, Source
from ivr.sip.ua import UserAgent, new_branch

from tests.sip.test_registrar import Phone, config, register

PROXY = Source("UDP", "127.0.0.1", 5090)          # Kamailio, as the node sees it
PATH = "<sip:127.0.0.1:5090;lr;received=sip:192.0.2.50:40000>"
CONTACT = "sip:2001@10.0.0.5:5060"


def registrar(clock=None):
    clock = clock or Clock()
    clock.advance(1_700_000_000)
    return Registrar(config(), NonceManager(b"k" * 32, lifetime=300), LocationService(),
                     clock, Throttle())


def test_path_is_stored_echoed_and_names_the_first_hop():
    reg = registrar()
    r = register(reg, Phone("2001", "demo2001"), PROXY,
                 extra=[("Path", PATH), ("Supported", "path, outbound")])
    assert r.status == 200
    assert r.headers.get_all("Path") == [PATH]            # RFC 3327 5.3: echoed
    assert "path" in r.headers.get_all("Supported")
    [binding] = reg.lookup("2001")
    assert binding.path == (PATH,)
    assert binding.target() == ("UDP", "127.0.0.1", 5090)  # through the proxy
    assert reg.route_set_for(CONTACT) == (PATH,)
    assert reg.route_set_for("sip:someone@10.0.0.9") == ()


def test_path_kept_but_not_echoed_without_supported_path():
    reg = registrar()
    r = register(reg, Phone("2001", "demo2001"), PROXY,
                 extra=[("Path", "<sip:p1.example;lr>"), ("Path", "<sip:p2.example:5070;lr;transport=tcp>")])
    assert r.status == 200
    assert r.headers.get_all("Path") == []
    [binding] = reg.lookup("2001")
    assert binding.path == ("<sip:p1.example;lr>", "<sip:p2.example:5070;lr;transport=tcp>")
    assert binding.target() == ("UDP", "p1.example", 5060)


def test_a_refresh_without_path_forgets_it_and_deregistering_drops_the_route_set():
    clock = Clock()
    reg = registrar(clock)
    phone = Phone("2001", "demo2001")
    assert register(reg, phone, PROXY, extra=[("Path", PATH)]).status == 200
    assert reg.handle(phone.request(), Source("UDP", "198.51.100.9", 40123)).status == 200
    [binding] = reg.lookup("2001")
    assert binding.path == () and binding.target() == ("UDP", "198.51.100.9", 40123)
    assert reg.route_set_for(CONTACT) == ()
    assert reg.handle(phone.request(extra=[("Path", PATH)]), PROXY).status == 200
    assert reg.route_set_for(CONTACT) == (PATH,)
    assert reg.handle(phone.request(expires=0, extra=[("Path", PATH)]), PROXY).status == 200
    assert reg.lookup("2001") == [] and reg.route_set_for(CONTACT) == ()


def test_a_path_that_is_not_a_sip_uri_is_refused_400():
    reg = registrar()
    phone = Phone("2001", "demo2001")
    first = reg.handle(phone.request(auth=False), PROXY)
    phone.learn(first)
    r = reg.handle(phone.request(extra=[("Path", "<mailto:x@example.com>")]), PROXY)
    assert r.status == 400 and r.reason == "Bad Path"
    r = reg.handle(phone.request(extra=[("Path", "<sip:@@>")]), PROXY)
    assert r.status == 400
    assert reg.lookup("2001") == []


class RecordingTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[object, Destination]] = []

    def send_request(self, request, dest: Destination) -> None:
        self.sent.append((request, dest))

    def send_response(self, response, source) -> None:
        self.sent.append((response, source))

    def is_reliable(self, where) -> bool:
        return where.transport != "UDP"


class Listener:
    def __getattr__(self, name):
        return lambda *args: None


def _ua_with_phone_behind_proxy():
    clock = Clock()
    reg = registrar(clock)
    assert register(reg, Phone("2001", "demo2001"), PROXY, extra=[("Path", PATH)]).status == 200
    transport = RecordingTransport()
    ua = UserAgent(clock, transport, None, "127.0.0.2", 5060, registrar=reg)
    return reg, ua, transport


def test_invite_to_a_phone_registered_through_a_proxy_preloads_its_path():
    reg, ua, transport = _ua_with_phone_behind_proxy()
    [binding] = reg.lookup("2001")
    ua.invite(binding.uri, Listener(), b"", dest=Destination(*binding.target()))
    [(invite, dest)] = transport.sent
    assert invite.method == "INVITE" and invite.uri == CONTACT
    assert invite.headers.get_all("Route") == [PATH]
    assert dest == Destination("UDP", "127.0.0.1", 5090)


def test_invite_without_a_destination_goes_to_the_first_route():
    reg, ua, transport = _ua_with_phone_behind_proxy()
    ua.invite(CONTACT, Listener(), b"")
    [(invite, dest)] = transport.sent
    assert invite.headers.get_all("Route") == [PATH]
    assert dest == Destination("UDP", "127.0.0.1", 5090)
    # a target nobody registered with a Path: no Route, sent to its own address
    ua.invite("sip:9999@192.0.2.9:5070", Listener(), b"")
    invite, dest = transport.sent[-1]
    assert invite.headers.get_all("Route") == [] and dest == Destination("UDP", "192.0.2.9", 5070)


def _options(ua):
    h = Headers()
    h.add("Via", f"SIP/2.0/UDP 127.0.0.1:5090;branch={new_branch()}")
    h.add("Max-Forwards", "70")
    h.add("From", "<sip:kamailio@127.0.0.1:5090>;tag=k1")
    h.add("To", "<sip:127.0.0.2:5060>")
    h.add("Call-ID", new_branch())
    h.add("CSeq", "1 OPTIONS")
    ua.receive(Request("OPTIONS", "sip:127.0.0.2:5060", h), PROXY)


def test_options_probe_is_200_with_path_supported_and_503_while_draining():
    reg, ua, transport = _ua_with_phone_behind_proxy()
    _options(ua)
    response, _ = transport.sent[-1]
    assert response.status == 200
    assert "path" in response.headers.get_all("Supported")
    ua.draining = True                    # SIGTERM (or the database away): the dispatcher
    _options(ua)                          # takes the node out of its set
    assert transport.sent[-1][0].status == 503
