"""Failure bans: protected addresses are not counted, every ban is listed, logged and liftable.

Plain numbers: the pure Throttle on its own.  The forged-flood tests go through the real
DigestGate, Registrar and InviteAuthenticator wired as the server wires them.
"""
import pytest
from twisted.internet.task import Clock
from twisted.logger import Logger, formatEvent

from ivr.config.extensions import parse_extensions
from ivr.sip.auth import NonceManager, build_authorization, compute_ha1, parse_challenge
from ivr.sip.authenticator import CallerKind, DigestGate, InviteAuthenticator
from ivr.sip.headers import Headers
from ivr.sip.message import Request
from ivr.sip.registrar import LocationService, Registrar
from ivr.sip.throttle import Ban, Throttle
from ivr.sip.transport import Source


class Lines:
    """A ``log`` for Throttle: the real Twisted Logger, its events formatted to lines."""

    def __init__(self):
        self.events = []
        self.info = Logger(namespace="test.throttle", observer=self.events.append).info

    @property
    def lines(self):
        return [formatEvent(e) for e in self.events]


# -- the rules on plain numbers ----------------------------------------------------------------

def test_protected_failures_are_not_counted():
    t = Throttle(max_failures=3, window=60, ban_time=300)
    for i in range(100):
        assert t.failure("203.0.113.10", i * 0.1, protected=True) is False
    assert not t.is_banned("203.0.113.10", 10)
    assert t.tracked == 0 and t.bans(10) == []


def test_protected_failures_do_not_add_to_earlier_unprotected_ones():
    t = Throttle(max_failures=3, window=60, ban_time=300)
    t.failure("h", 0)
    t.failure("h", 1)
    assert t.failure("h", 2, protected=True) is False
    assert t.failure("h", 3) is True  # the third *counted* failure


def test_protection_does_not_lift_a_ban_already_in_force():
    t = Throttle(max_failures=2, window=60, ban_time=300)
    t.failure("h", 0)
    t.failure("h", 1)
    assert t.failure("h", 2, protected=True) is True
    assert t.is_banned("h", 300)


def test_bans_list_address_failures_since_until():
    t = Throttle(max_failures=2, window=60, ban_time=300)
    t.failure("b", 5)
    t.failure("b", 6)
    t.failure("a", 7)
    t.failure("a", 8)
    t.failure("c", 9)  # one failure: no ban
    assert t.bans(10) == [Ban("b", 2, 6, 306), Ban("a", 2, 8, 308)]
    assert t.bans(10)[0].to_dict() == {"address": "b", "failures": 2, "since": 6, "until": 306}
    assert t.bans(306) == [Ban("a", 2, 8, 308)]
    assert t.banned(10) == ["b", "a"]


def test_lift_ends_a_ban_now_with_a_clean_slate():
    t = Throttle(max_failures=2, window=60, ban_time=300)
    t.failure("h", 0)
    t.failure("h", 1)
    assert t.lift("h", 50) == Ban("h", 2, 1, 301)
    assert not t.is_banned("h", 50)
    assert t.failure("h", 51) is False  # counting starts again
    assert t.lift("h", 52) is None       # failures but no ban
    assert t.lift("nobody", 52) is None
    t.failure("h", 53)
    assert t.lift("h", 400) is None      # the ban already ran out


def test_a_ban_is_logged_once_when_it_starts_and_once_when_it_expires():
    log = Lines()
    t = Throttle(max_failures=3, window=60, ban_time=300, log=log.info)
    t.failure("192.0.2.9", 0)
    t.failure("192.0.2.9", 1)
    assert log.lines == []
    t.failure("192.0.2.9", 2)
    t.failure("192.0.2.9", 3)  # while banned: no second line
    assert t.is_banned("192.0.2.9", 100)
    assert log.lines == ["banning 192.0.2.9 after 3 failed authentications "
                         "until 1970-01-01T00:05:02Z (300 s)"]
    e = log.events[0]
    assert (e["address"], e["failures"], e["since"], e["until"]) == ("192.0.2.9", 3, 2, 302)
    t.expire(301)
    assert len(log.lines) == 1
    t.expire(302)
    t.expire(303)
    assert not t.is_banned("192.0.2.9", 304)
    assert log.lines[1:] == ["ban of 192.0.2.9 (3 failed authentications, since "
                             "1970-01-01T00:00:02Z, until 1970-01-01T00:05:02Z) ended: expired"]


def test_lift_and_lazy_expiry_are_logged_once():
    log = Lines()
    t = Throttle(max_failures=1, window=60, ban_time=10, log=log.info)
    t.failure("a", 0)
    t.failure("b", 0)
    t.lift("a", 1)
    t.lift("a", 2)
    assert not t.is_banned("b", 10)  # noticed on the next packet, before housekeeping
    t.expire(11)
    assert [line.split(") ended: ")[1] for line in log.lines[2:]] == ["lifted by the API", "expired"]
    assert len(log.lines) == 4


def test_a_ban_forgotten_for_room_is_logged():
    log = Lines()
    t = Throttle(max_failures=1, window=60, ban_time=300, max_tracked=2, log=log.info)
    for host in ("a", "b", "c"):
        t.failure(host, 0)
    assert t.tracked == 2
    assert log.lines[-1].startswith("ban of a ") and log.lines[-1].endswith("table of addresses is full")


# -- through the real gate, registrar and INVITE authenticator ---------------------------------

REALM = "ivr.local"
TRUNK = Source("UDP", "203.0.113.10", 5060)
PHONE = Source("UDP", "198.51.100.20", 41000)
ATTACKER = Source("UDP", "192.0.2.66", 5060)
STRANGER = Source("UDP", "192.0.2.77", 5060)


def yaml_text():
    exts = "".join(f"""
  "{n}":
    ha1_md5: {compute_ha1(n, REALM, "pw" + n, "MD5")}
    ha1_sha256: {compute_ha1(n, REALM, "pw" + n, "SHA-256")}""" for n in ("2001", "2002"))
    return f"""
realm: {REALM}
security: {{max_failures: 3}}
extensions:{exts}
trunks:
  carrier1:
    address: sip.carrier.example
    allow_from: [203.0.113.0/28]
"""


class Server:
    """The security objects wired as ivr/server.py wires them."""

    def __init__(self, gate_location=True):
        cfg, errors = parse_extensions(yaml_text(), "t.yaml")
        assert errors == []
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.log = Lines()
        nonces = NonceManager(b"n" * 32)
        self.throttle = Throttle.from_settings(cfg.security, log=self.log.info)
        self.location = LocationService()
        gate = DigestGate(cfg, nonces, self.throttle, self.location) if gate_location else None
        self.registrar = Registrar(cfg, nonces, self.location, self.clock, self.throttle, gate)
        self.invites = InviteAuthenticator(cfg, nonces, self.clock, self.throttle,
                                           local_hosts=["127.0.0.1"], gate=self.registrar.gate)
        self.cseq = 0

    def register(self, user, password, source, challenge=None, expires=3600):
        """One REGISTER (answering ``challenge`` if given); the response (None: dropped)."""
        self.cseq += 1
        host = f"[{source.host}]" if ":" in source.host else source.host
        h = Headers()
        h.add("Via", f"SIP/2.0/UDP {host}:{source.port};branch=z9hG4bK{self.cseq}x")
        h.add("Max-Forwards", "70")
        h.add("From", f"<sip:{user}@{REALM}>;tag=f{self.cseq}")
        h.add("To", f"<sip:{user}@{REALM}>")
        h.add("Call-ID", f"reg-{user}")
        h.add("CSeq", f"{self.cseq} REGISTER")
        h.add("Contact", f"<sip:{user}@{host}:{source.port}>")
        h.add("Expires", str(expires))
        if challenge is not None:
            h.add("Authorization", build_authorization(
                challenge, "REGISTER", f"sip:{REALM}", user, password, cnonce="c", nc=self.cseq))
        return self.registrar.handle(Request("REGISTER", f"sip:{REALM}", h), source)

    def challenge(self, source=ATTACKER):
        r = self.register("2001", None, source)
        assert r.status == 401
        return parse_challenge(r.headers.get_all("WWW-Authenticate")[0])

    def login(self, user, source, expires=3600):
        return self.register(user, "pw" + user, source, self.challenge(source), expires)

    def flood(self, user, forged_source, n=50):
        """Bad passwords for ``user`` "from" ``forged_source``, with a nonce the attacker
        fetched from its own address (nonces are not tied to an address)."""
        challenge = self.challenge(ATTACKER)
        return [self.register(user, "guess", forged_source, challenge) for _ in range(n)]

    def trunk_call(self):
        h = Headers()
        h.add("Via", "SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bKtrunk")
        h.add("Max-Forwards", "70")
        h.add("From", "<sip:+15551234567@carrier.example>;tag=t")
        h.add("To", "<sip:+15550001111@127.0.0.1>")
        h.add("Call-ID", "trunk-call")
        h.add("CSeq", "1 INVITE")
        h.add("Contact", "<sip:carrier@203.0.113.10>")
        return self.invites.check(Request("INVITE", "sip:+15550001111@127.0.0.1", h), TRUNK)


def test_forged_flood_from_a_trunk_address_does_not_ban_it():
    s = Server()
    answers = s.flood("2001", TRUNK)
    assert {r.status for r in answers} == {403}  # refused every time, never dropped
    assert not s.throttle.is_banned(TRUNK.host, s.clock.seconds())
    assert s.trunk_call().caller.kind is CallerKind.TRUNK
    assert s.log.lines == []


def test_forged_flood_from_a_registered_phone_does_not_ban_it():
    s = Server()
    assert s.login("2002", PHONE).status == 200
    for user in ("2001", "7777", "2002"):  # other users, unknown users, and its own name
        assert {r.status for r in s.flood(user, PHONE)} == {403}
    assert s.throttle.bans(s.clock.seconds()) == []
    assert s.login("2002", PHONE).status == 200  # the phone refreshes as usual


def test_the_same_flood_still_bans_an_unprotected_address():
    s = Server()
    answers = s.flood("2001", STRANGER, n=5)
    assert [r is None for r in answers] == [False, False, False, True, True]
    assert [b.address for b in s.throttle.bans(s.clock.seconds())] == [STRANGER.host]
    assert len(s.log.lines) == 1 and s.log.lines[0].startswith("banning 192.0.2.77 after 3 ")


def test_protection_ends_with_the_registration():
    s = Server()
    assert s.login("2002", PHONE, expires=60).status == 200
    s.clock.advance(61)  # expired, even before housekeeping removes it
    assert s.flood("2001", PHONE, n=4)[-1] is None  # the 3rd failure bans, the 4th is dropped
    assert s.throttle.is_banned(PHONE.host, s.clock.seconds())


def test_unregistering_ends_the_protection():
    s = Server()
    assert s.login("2002", PHONE).status == 200
    assert s.login("2002", PHONE, expires=0).status == 200
    assert s.location.registered_from(PHONE.host, s.clock.seconds()) == frozenset()
    s.flood("2001", PHONE, n=3)
    assert s.throttle.is_banned(PHONE.host, s.clock.seconds())


def test_a_registrar_building_its_own_gate_protects_registered_addresses():
    s = Server(gate_location=False)
    assert s.registrar.gate.location is s.location
    assert s.login("2002", PHONE).status == 200
    s.flood("2001", PHONE)
    assert not s.throttle.is_banned(PHONE.host, s.clock.seconds())


def test_registered_from_tracks_replaced_and_removed_bindings():
    s = Server()
    now = s.clock.seconds()
    assert s.login("2002", PHONE).status == 200
    assert s.location.registered_from("198.51.100.20", now) == {"2002"}
    moved = Source("UDP", "198.51.100.21", 41000)
    assert s.login("2002", moved).status == 200  # another contact from another address
    assert s.location.registered_from("198.51.100.21", now) == {"2002"}
    s.location.clear("2002")
    assert s.location.registered_from("198.51.100.20", now) == frozenset()
    assert s.location.registered_from("198.51.100.21", now) == frozenset()
    assert s.location._by_host == {}


@pytest.mark.parametrize("host", ["[2001:db8::5]", "2001:DB8::5"])
def test_registered_from_matches_ipv6_however_written(host):
    s = Server()
    assert s.login("2002", Source("UDP", "2001:db8::5", 5060)).status == 200
    assert s.location.registered_from(host, s.clock.seconds()) == {"2002"}


# -- the location index behind registered_from -------------------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

from ivr.sip.registrar import Binding, contact_key  # noqa: E402
from ivr.sip.uri import NameAddr, parse_uri  # noqa: E402

_HOSTS = ["192.0.2.1", "192.0.2.2", "2001:db8::1"]
_ops = st.lists(st.one_of(
    st.tuples(st.just("put"), st.sampled_from(["2001", "2002"]), st.integers(0, 3),
              st.sampled_from(_HOSTS), st.integers(1, 20), st.integers(1, 3)),
    st.tuples(st.just("remove"), st.sampled_from(["2001", "2002"]), st.integers(0, 3)),
    st.tuples(st.just("clear"), st.sampled_from(["2001", "2002"])),
    st.tuples(st.just("expire"), st.integers(0, 25))), max_size=40)


@settings(max_examples=200, deadline=None)
@given(_ops)
def test_registered_from_always_agrees_with_the_bindings(ops):
    """Whatever happens to the bindings, registered_from answers as a scan of them would,
    and the index keeps nothing for a binding that is gone."""
    loc = LocationService()
    for op in ops:
        if op[0] == "put":
            _, aor, n, host, expires, max_contacts = op
            uri = parse_uri(f"sip:{aor}@10.0.0.{n}")
            loc.put(Binding(aor, NameAddr(uri), expires, Source("UDP", host, 5060),
                            updated_at=len(ops)), max_contacts)
        elif op[0] == "remove":
            loc.remove(op[1], contact_key(parse_uri(f"sip:{op[1]}@10.0.0.{op[2]}")))
        elif op[0] == "clear":
            loc.clear(op[1])
        else:
            loc.expire(op[1])
        everything = [b for aor in ("2001", "2002") for b in loc.bindings(aor, -1)]
        for now in (0, 10, 30):
            for host in _HOSTS:
                expected = {b.aor for b in everything if b.received.host == host and b.expires_at > now}
                assert loc.registered_from(host, now) == expected
        indexed = {(aor, key) for keys in loc._by_host.values() for aor, key in keys}
        assert indexed == {(b.aor, contact_key(b.contact.uri)) for b in everything}
