"""Bans behind a trusted proxy (Kamailio in front of a farm): the phone is banned, never the
proxy, and a banned phone's relayed requests are answered 403 so the proxy does not take
the node for dead.  On a task.Clock, through the registrar, INVITE authenticator and UA
wired as the server wires them."""
from __future__ import annotations

from twisted.internet.task import Clock

from ivr.config.extensions import parse_extensions
from ivr.sip.auth import NonceManager, build_authorization, parse_challenge
from ivr.sip.authenticator import CallerKind, DigestGate, InviteAuthenticator
from ivr.sip.headers import Headers
from ivr.sip.message import Request
from ivr.sip.registrar import LocationService, Registrar
from ivr.sip.throttle import Throttle
from ivr.sip.transport import Source
from ivr.sip.ua import UserAgent

from .test_registrar_path import RecordingTransport
from .test_throttle_bans import REALM, yaml_text

PROXY = Source("UDP", "192.0.2.1", 5060)           # Kamailio
BAD_PHONE = ("198.51.100.66", 40066)                # what Kamailio recorded (received/rport)
GOOD_PHONE = ("198.51.100.20", 40020)
STRANGER = Source("UDP", "192.0.2.77", 5060)        # not a proxy


def config(trusted="[192.0.2.1]"):
    cfg, errors = parse_extensions(
        yaml_text().replace("security: {max_failures: 3}",
                            f"security: {{max_failures: 3, trusted_proxies: {trusted}}}"),
        "t.yaml")
    assert errors == []
    return cfg


class Farm:
    def __init__(self, trusted="[192.0.2.1]"):
        cfg = config(trusted)
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        nonces = NonceManager(b"n" * 32)
        self.throttle = Throttle.from_settings(cfg.security)
        location = LocationService()
        gate = DigestGate(cfg, nonces, self.throttle, location)
        self.registrar = Registrar(cfg, nonces, location, self.clock, self.throttle, gate)
        self.invites = InviteAuthenticator(cfg, nonces, self.clock, self.throttle,
                                           local_hosts=["127.0.0.1"], gate=gate)
        self.transport = RecordingTransport()
        self.ua = UserAgent(self.clock, self.transport, None, "127.0.0.2", 5060,
                            registrar=self.registrar, invite_auth=self.invites,
                            throttle=self.throttle)
        self.n = 0

    def request(self, method, user, phone, auth=None, password=None, via_phone=True,
                received=True):
        """``method`` from ``phone`` (host, port) as Kamailio relays it: its Via on top,
        the phone's below with received/rport (``via_phone=False``: Kamailio's own)."""
        self.n += 1
        h = Headers()
        h.add("Via", f"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKk{self.n}")
        if via_phone:
            host, port = phone
            extra = f";received={host};rport={port}" if received else ""
            sent_by = "10.0.0.9:5060" if received else f"{host}:{port}"
            h.add("Via", f"SIP/2.0/UDP {sent_by};branch=z9hG4bKp{self.n}{extra}")
        h.add("Max-Forwards", "69")
        h.add("From", f"<sip:{user}@{REALM}>;tag=f{self.n}")
        h.add("To", f"<sip:{user if method == 'REGISTER' else '2002'}@{REALM}>")
        h.add("Call-ID", f"c{self.n}")
        h.add("CSeq", f"{self.n} {method}")
        h.add("Contact", f"<sip:{user}@{phone[0]}:{phone[1]}>")
        if auth is not None:
            header = "Authorization" if method == "REGISTER" else "Proxy-Authorization"
            h.add(header, build_authorization(auth, method, f"sip:{REALM}", user, password,
                                              cnonce="c", nc=1))
        return Request(method, f"sip:{REALM}", h)

    def challenge(self, phone=GOOD_PHONE):
        r = self.registrar.handle(self.request("REGISTER", "2001", phone), PROXY)
        assert r.status == 401
        return parse_challenge(r.headers.get_all("WWW-Authenticate")[0])

    def register(self, user, password, phone, source=PROXY):
        return self.registrar.handle(
            self.request("REGISTER", user, phone, self.challenge(phone), password), source)


def test_client_address_is_the_via_below_a_trusted_proxy():
    t = Throttle(trusted_proxies={"192.0.2.1", "192.0.2.2"})
    f = Farm()
    assert t.client_address("192.0.2.1", f.request("REGISTER", "2001", BAD_PHONE)) == BAD_PHONE[0]
    # no received=: the sent-by host
    assert t.client_address("192.0.2.1", f.request("REGISTER", "2001", BAD_PHONE,
                                                   received=False)) == BAD_PHONE[0]
    # the proxy's own request (an OPTIONS probe): the proxy, which is never banned
    own = f.request("OPTIONS", "k", BAD_PHONE, via_phone=False)
    assert t.client_address("192.0.2.1", own) == "192.0.2.1"
    # anyone else's Vias are not believed
    assert t.client_address(STRANGER.host, f.request("REGISTER", "2001", BAD_PHONE)) == STRANGER.host
    # two trusted proxies in a row: the first address that is not one of them
    two = f.request("REGISTER", "2001", ("192.0.2.2", 5060), received=False)
    two.headers.add("Via", "SIP/2.0/UDP 203.0.113.5:5070;branch=z9hG4bKdeep")
    assert t.client_address("192.0.2.1", two) == "203.0.113.5"
    # a Via that cannot be parsed: the proxy (never banned), not an exception
    bad = f.request("REGISTER", "2001", BAD_PHONE, via_phone=False)
    bad.headers.add("Via", "garbage")
    assert t.client_address("192.0.2.1", bad) == "192.0.2.1"


def test_a_phone_with_a_bad_password_behind_the_proxy_is_banned_not_the_proxy():
    f = Farm()
    answers = [f.register("2001", "guess", BAD_PHONE) for _ in range(3)]
    assert [r.status for r in answers] == [403, 403, 403]
    now = f.clock.seconds()
    assert f.throttle.banned(now) == [BAD_PHONE[0]]
    assert not f.throttle.is_banned(PROXY.host, now)
    # the banned phone's next request through the proxy: the UA answers 403 at once
    f.ua.receive(f.request("REGISTER", "2001", BAD_PHONE), PROXY)
    [(response, dest)] = f.transport.sent
    assert (response.status, response.reason, dest) == (403, "Banned", PROXY)
    # another phone through the same proxy registers and is authenticated for calls
    assert f.register("2002", "pw2002", GOOD_PHONE).status == 200
    challenge = f.challenge(GOOD_PHONE)
    invite = f.request("INVITE", "2002", GOOD_PHONE, challenge, "pw2002")
    result = f.invites.check(invite, PROXY)
    assert result.caller is not None and result.caller.kind is CallerKind.EXTENSION
    # and the ban runs out as any other
    f.clock.advance(300)
    assert not f.throttle.is_banned(BAD_PHONE[0], f.clock.seconds())


def test_the_proxy_itself_is_never_counted():
    f = Farm()
    for _ in range(10):  # the proxy's own requests carry no Via of a client
        r = f.registrar.handle(f.request("REGISTER", "2001", BAD_PHONE, f.challenge(),
                                         "guess", via_phone=False), PROXY)
        assert r.status == 403
    assert f.throttle.bans(f.clock.seconds()) == [] and f.throttle.tracked == 0


def test_untrusted_sources_are_counted_as_before():
    f = Farm()
    for _ in range(3):  # a stranger's Vias name someone else: counted against the stranger
        f.register("2001", "guess", BAD_PHONE, source=STRANGER)
    assert f.throttle.banned(f.clock.seconds()) == [STRANGER.host]
    f.ua.receive(f.request("REGISTER", "2001", BAD_PHONE), STRANGER)
    assert f.transport.sent == []   # dropped, no answer, as before


def test_without_trusted_proxies_the_proxy_is_what_gets_banned():
    f = Farm(trusted="[]")
    for _ in range(3):
        f.register("2001", "guess", BAD_PHONE)
    assert f.throttle.banned(f.clock.seconds()) == [PROXY.host]


def test_trusted_proxies_are_validated_with_line_numbers():
    cfg = config("['192.0.2.1', '[2001:db8::0001]']")
    assert cfg.security.trusted_proxies == ("192.0.2.1", "2001:db8::1")
    _, errors = parse_extensions(
        yaml_text().replace("security: {max_failures: 3}",
                            "security:\n  trusted_proxies: [192.0.2.1, kamailio.example, 10.0.0.0/8]"),
        "t.yaml")
    assert len(errors) == 2
    assert str(errors[0]).startswith("t.yaml:4:")
    assert "'kamailio.example' is not an IP address" in str(errors[0])
    assert "'10.0.0.0/8' is not an IP address" in str(errors[1])
