"""Registrar (RFC 3261 10.3) with digest auth, driven by a fake clock."""
import re

import pytest
from twisted.internet.task import Clock

from ivr.config.extensions import load_extensions, parse_extensions
from ivr.sip.auth import NonceManager, build_authorization, compute_ha1, parse_challenge
from ivr.sip.headers import Headers
from ivr.sip.message import Request, parse_datagram, serialize
from ivr.sip.registrar import Binding, LocationService, Registrar
from ivr.sip.throttle import Throttle
from ivr.sip.transport import Source

REALM = "ivr.local"
YAML = f"""
realm: {REALM}
extensions:
  "2001":
    ha1_md5: {compute_ha1("2001", REALM, "demo2001", "MD5")}
    ha1_sha256: {compute_ha1("2001", REALM, "demo2001", "SHA-256")}
    max_contacts: 3
  "2002":
    ha1_md5: {compute_ha1("2002", REALM, "demo2002", "MD5")}
    ha1_sha256: {compute_ha1("2002", REALM, "demo2002", "SHA-256")}
    static_contacts: ["sip:desk@192.0.2.7:5062"]
"""
SRC = Source("UDP", "198.51.100.9", 40123)


def config():
    cfg, errors = parse_extensions(YAML, "test.yaml")
    assert errors == []
    return cfg


class Phone:
    """A minimal REGISTER-sending client."""

    def __init__(self, user, password, contact=None, call_id="cid-1@phone"):
        self.user, self.password = user, password
        self.contact = contact or f"<sip:{user}@10.0.0.5:5060>"
        self.call_id, self.cseq, self.nc = call_id, 0, 0
        self.challenge = None

    def request(self, expires=None, contact=None, auth=True, algorithm="SHA-256", aor=None,
                password=None, extra=()):
        self.cseq += 1
        aor = aor or self.user
        h = Headers()
        h.add("Via", f"SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK{self.cseq:04d}x;rport")
        h.add("Max-Forwards", "70")
        h.add("From", f"<sip:{aor}@{REALM}>;tag=ft{self.user}")
        h.add("To", f"<sip:{aor}@{REALM}>")
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{self.cseq} REGISTER")
        if contact != "":
            h.add("Contact", contact or self.contact)
        if expires is not None:
            h.add("Expires", str(expires))
        for name, value in extra:
            h.add(name, value)
        if auth and self.challenge is not None:
            self.nc += 1
            ch = self.challenge[algorithm]
            h.add("Authorization", build_authorization(ch, "REGISTER", f"sip:{REALM}", self.user,
                                                       password or self.password, cnonce="c0ffee",
                                                       nc=self.nc))
        return Request("REGISTER", f"sip:{REALM}", h)

    def learn(self, response):
        values = response.headers.get_all("WWW-Authenticate")
        self.challenge = {c.algorithm: c for c in map(parse_challenge, values)}
        self.nc = 0


@pytest.fixture
def env():
    clock = Clock()
    clock.advance(1_700_000_000)
    nonces = NonceManager(b"k" * 32, lifetime=300)
    throttle = Throttle()
    reg = Registrar(config(), nonces, LocationService(), clock, throttle)
    return clock, reg, throttle


def register(reg, phone, source=SRC, **kw):
    """Challenge, then authenticated REGISTER; returns the final response."""
    first = reg.handle(phone.request(auth=False, **kw), source)
    assert first.status == 401
    phone.learn(first)
    return reg.handle(phone.request(**kw), source)


def contact_expires(response):
    out = {}
    for value in response.headers.get_all("Contact"):
        m = re.match(r"<([^>]*)>.*;expires=(\d+)", value)
        out[m.group(1)] = int(m.group(2))
    return out


def test_challenge_offers_sha256_then_md5_with_one_nonce(env):
    clock, reg, _ = env
    r = reg.handle(Phone("2001", "demo2001").request(auth=False), SRC)
    assert r.status == 401
    challenges = [parse_challenge(v) for v in r.headers.get_all("WWW-Authenticate")]
    assert [c.algorithm for c in challenges] == ["SHA-256", "MD5"]
    assert {c.realm for c in challenges} == {REALM}
    assert {c.qop_options for c in challenges} == {("auth",)}
    assert challenges[0].nonce == challenges[1].nonce
    assert r.to.tag


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_register_with_either_algorithm(env, algorithm):
    clock, reg, _ = env
    r = register(reg, Phone("2001", "demo2001"), algorithm=algorithm)
    assert r.status == 200
    assert contact_expires(r) == {"sip:2001@10.0.0.5:5060": 3600}
    [b] = reg.lookup("2001")
    assert b.uri == "sip:2001@10.0.0.5:5060"
    assert b.target() == ("UDP", "198.51.100.9", 40123)  # where it registered from (NAT)
    assert b.received == SRC


def test_refresh_expire_and_reregister(env):
    clock, reg, _ = env
    phone = Phone("2001", "demo2001")
    assert register(reg, phone, expires=120).status == 200
    clock.advance(100)
    r = reg.handle(phone.request(expires=120), SRC)  # same nonce, next nc: no new challenge
    assert r.status == 200
    assert contact_expires(r) == {"sip:2001@10.0.0.5:5060": 120}
    clock.advance(119)
    assert len(reg.lookup("2001")) == 1
    clock.advance(1)
    assert reg.lookup("2001") == []
    assert [b.aor for b in reg.expire()] == ["2001"]
    assert len(reg.location) == 0


def test_expires_remaining_listed_for_every_binding(env):
    clock, reg, _ = env
    a = Phone("2001", "demo2001", "<sip:2001@10.0.0.5:5060>", "cid-a")
    b = Phone("2001", "demo2001", "<sip:2001@10.0.0.6:5070;transport=tcp>", "cid-b")
    assert register(reg, a, expires=600).status == 200
    clock.advance(50)
    r = register(reg, b)
    assert r.status == 200
    assert contact_expires(r) == {"sip:2001@10.0.0.5:5060": 550, "sip:2001@10.0.0.6:5070;transport=tcp": 3600}
    assert len(reg.lookup("2001")) == 2


def test_per_contact_expires_and_clamp_to_max(env):
    clock, reg, _ = env
    phone = Phone("2001", "demo2001")
    contacts = "<sip:2001@10.0.0.5:5060>;expires=90, <sip:2001@10.0.0.5:5061>"
    r = register(reg, phone, contact=contacts, expires=99999)
    assert r.status == 200
    assert contact_expires(r) == {"sip:2001@10.0.0.5:5060": 90, "sip:2001@10.0.0.5:5061": 7200}


def test_interval_too_brief(env):
    clock, reg, _ = env
    phone = Phone("2001", "demo2001")
    r = register(reg, phone, expires=30)
    assert r.status == 423
    assert r.headers.get("Min-Expires") == "60"
    assert reg.lookup("2001") == []


def test_expires_zero_removes_one_and_wildcard_removes_all(env):
    clock, reg, _ = env
    a = Phone("2001", "demo2001", "<sip:2001@10.0.0.5:5060>", "cid-a")
    b = Phone("2001", "demo2001", "<sip:2001@10.0.0.6:5060>", "cid-b")
    register(reg, a)
    register(reg, b)
    r = reg.handle(a.request(expires=0), SRC)
    assert r.status == 200
    assert list(contact_expires(r)) == ["sip:2001@10.0.0.6:5060"]
    register(reg, a)
    r = reg.handle(b.request(contact="*", expires=0), SRC)
    assert r.status == 200 and r.headers.get_all("Contact") == []
    assert reg.lookup("2001") == []


def test_wildcard_needs_expires_zero(env):
    clock, reg, _ = env
    r = register(reg, Phone("2001", "demo2001"), contact="*", expires=60)
    assert r.status == 400


def test_query_without_contact_lists_bindings(env):
    clock, reg, _ = env
    phone = Phone("2001", "demo2001")
    register(reg, phone, expires=300)
    clock.advance(10)
    r = reg.handle(phone.request(contact=""), SRC)
    assert r.status == 200
    assert contact_expires(r) == {"sip:2001@10.0.0.5:5060": 290}


def test_max_contacts_evicts_oldest(env):
    clock, reg, _ = env
    for i in range(4):
        clock.advance(1)
        register(reg, Phone("2001", "demo2001", f"<sip:2001@10.0.0.{i}:5060>", f"cid-{i}"))
    assert sorted(b.uri for b in reg.lookup("2001")) == [f"sip:2001@10.0.0.{i}:5060" for i in (1, 2, 3)]


def test_older_cseq_same_call_id_is_ignored(env):
    clock, reg, _ = env
    phone = Phone("2001", "demo2001")
    register(reg, phone, expires=600)
    phone.cseq = 0  # an older request (CSeq 1 < 2) from the same client arrives late
    stale = phone.request(expires=0)
    phone.cseq = 2
    late = phone.request(expires=0)
    assert reg.handle(stale, SRC).status == 200
    assert len(reg.lookup("2001")) == 1
    assert reg.handle(late, SRC).status == 200
    assert reg.lookup("2001") == []


def test_stale_nonce_gets_stale_true(env):
    clock, reg, _ = env
    phone = Phone("2001", "demo2001")
    register(reg, phone)
    clock.advance(301)
    r = reg.handle(phone.request(), SRC)
    assert r.status == 401
    assert {parse_challenge(v).stale for v in r.headers.get_all("WWW-Authenticate")} == {True}
    phone.learn(r)
    assert reg.handle(phone.request(), SRC).status == 200


def test_replayed_nc_is_challenged_again(env):
    clock, reg, _ = env
    phone = Phone("2001", "demo2001")
    assert register(reg, phone).status == 200
    phone.nc -= 1  # the same nc again (a replay of a sniffed Authorization)
    r = reg.handle(phone.request(), SRC)
    assert r.status == 401
    assert {parse_challenge(v).stale for v in r.headers.get_all("WWW-Authenticate")} == {False}


def test_forged_nonce_is_challenged(env):
    clock, reg, _ = env
    phone = Phone("2001", "demo2001")
    phone.challenge = {"SHA-256": parse_challenge(f'Digest realm="{REALM}", nonce="bogus", '
                                                  'algorithm=SHA-256, qop="auth"')}
    assert reg.handle(phone.request(), SRC).status == 401


def test_wrong_password_403_and_username_must_match_aor(env):
    clock, reg, _ = env
    assert register(reg, Phone("2001", "wrong")).status == 403
    r = register(reg, Phone("2001", "demo2001"), aor="2002")
    assert r.status == 403
    assert reg.lookup("2002")[0].static and len(reg.lookup("2002")) == 1


def _normalise(response):
    text = serialize(response).decode()
    text = re.sub(r'nonce="[^"]*"', 'nonce="N"', text)
    text = re.sub(r"tag=[0-9a-f]+(?=\r\n)", "tag=T", text)
    return text


def test_unknown_user_is_indistinguishable_from_wrong_password(env):
    clock, reg, _ = env
    real, ghost = Phone("2001", "nope"), Phone("7777", "nope")
    ghost.user = real.user = "U"  # same headers apart from the username we put in below
    r1 = reg.handle(_as(real.request(auth=False), "2001"), SRC)
    r2 = reg.handle(_as(ghost.request(auth=False), "7777"), SRC)
    assert _normalise(r1).replace("2001", "X") == _normalise(r2).replace("7777", "X")
    assert r1.status == 401
    real.user, ghost.user = "2001", "7777"
    real.learn(r1)
    ghost.learn(r2)
    f1 = reg.handle(_as(real.request(), "2001"), SRC)
    f2 = reg.handle(_as(ghost.request(), "7777"), SRC)
    assert f1.status == f2.status == 403
    assert _normalise(f1).replace("2001", "X") == _normalise(f2).replace("7777", "X")


def _as(request, user):
    for name in ("From", "To"):
        request.headers.set(name, request.headers.get(name).replace("sip:U@", f"sip:{user}@")
                            .replace("tag=ftU", "tag=ftX"))
    return request


def test_unknown_user_does_the_same_hash_work(env, monkeypatch):
    clock, reg, _ = env
    import ivr.sip.authenticator as authn
    calls = []
    real_verify = authn.verify
    monkeypatch.setattr(authn, "verify", lambda *a, **k: calls.append(a[2]) or real_verify(*a, **k))
    for user in ("2001", "7777"):
        register(reg, Phone(user, "nope"))
    assert len(calls) == 2 and all(len(h) == 64 for h in calls)


def test_throttle_bans_after_repeated_failures_then_drops(env):
    clock, reg, throttle = env
    for _ in range(5):
        assert register(reg, Phone("2001", "guess")).status == 403
    assert reg.handle(Phone("2001", "demo2001").request(auth=False), SRC) is None
    other = Source("UDP", "198.51.100.10", 5060)
    assert register(reg, Phone("2001", "demo2001"), source=other).status == 200
    clock.advance(301)
    assert register(reg, Phone("2001", "demo2001")).status == 200


def test_success_resets_failure_count(env):
    clock, reg, throttle = env
    for _ in range(4):
        register(reg, Phone("2001", "guess"))
    assert register(reg, Phone("2001", "demo2001")).status == 200
    for _ in range(4):
        register(reg, Phone("2001", "guess"))
    assert not throttle.is_banned(SRC.host, clock.seconds())


def test_wire_round_trip_and_tcp_source(env):
    clock, reg, _ = env
    phone = Phone("2002", "demo2002", "<sip:2002@192.168.1.20:5060;transport=tcp>;+sip.instance=\"<urn:x>\"")
    tcp = Source("TCP", "203.0.113.4", 51000)
    first = reg.handle(parse_datagram(serialize(phone.request(auth=False))), tcp)
    phone.learn(parse_datagram(serialize(first)))
    r = parse_datagram(serialize(reg.handle(parse_datagram(serialize(phone.request())), tcp)))
    assert r.status == 200
    assert r.headers.get_all("Contact")[0].startswith('<sip:2002@192.168.1.20:5060;transport=tcp>;+sip.instance=')
    [b, static] = reg.lookup("2002")
    assert b.target() == ("TCP", "203.0.113.4", 51000)
    assert (static.uri, static.static, static.target()) == ("sip:desk@192.0.2.7:5062", True, None)


def test_location_service_is_pure_and_ordered_by_q():
    loc = LocationService()
    from ivr.sip.uri import parse_name_addr
    b1 = Binding("1", parse_name_addr("<sip:a@h>"), 100.0, None, q=0.5, updated_at=1)
    b2 = Binding("1", parse_name_addr("<sip:b@h>"), 200.0, None, q=1.0, updated_at=2)
    loc.put(b1, 5)
    loc.put(b2, 5)
    assert [b.uri for b in loc.bindings("1", 0)] == ["sip:b@h", "sip:a@h"]
    assert [b.uri for b in loc.bindings("1", 150)] == ["sip:b@h"]
    assert loc.expire(150) == [b1]


def test_bundled_demo_config_authenticates_demo_passwords():
    cfg, errors = load_extensions("config/extensions.yaml")
    assert errors == []
    clock = Clock()
    reg = Registrar(cfg, NonceManager(b"s" * 16), LocationService(), clock)
    for user in ("2001", "2002"):
        assert register(reg, Phone(user, f"demo{user}")).status == 200
        assert register(reg, Phone(user, "demo")).status == 403


def test_md5_only_user_agents_get_only_md5_whoever_they_claim_to_be():
    cfg, errors = parse_extensions(YAML + "md5_only_user_agents: ['^baresip v[01]\\.']\n", "t.yaml")
    assert errors == []
    reg = Registrar(cfg, NonceManager(b"k" * 32), LocationService(), Clock())
    for user in ("2001", "7777"):
        old = reg.handle(Phone(user, "x").request(auth=False, extra=[("User-Agent", "baresip v1.0.0 (x86_64/linux)")]), SRC)
        new = reg.handle(Phone(user, "x").request(auth=False, extra=[("User-Agent", "baresip v3.10.1")]), SRC)
        assert [parse_challenge(v).algorithm for v in old.headers.get_all("WWW-Authenticate")] == ["MD5"]
        assert [parse_challenge(v).algorithm for v in new.headers.get_all("WWW-Authenticate")] == ["SHA-256", "MD5"]
    phone = Phone("2001", "demo2001")
    first = reg.handle(phone.request(auth=False, extra=[("User-Agent", "baresip v1.0.0")]), SRC)
    phone.learn(first)
    assert reg.handle(phone.request(algorithm="MD5", extra=[("User-Agent", "baresip v1.0.0")]), SRC).status == 200
