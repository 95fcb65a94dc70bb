"""INVITE authentication: trunks by source, extensions by digest (407), anonymous DID callers."""
import re

import pytest
from twisted.internet.task import Clock

from ivr.config.extensions import parse_extensions
from ivr.sip.auth import NonceManager, build_authorization, compute_ha1, parse_challenge
from ivr.sip.authenticator import CallerKind, InviteAuthenticator
from ivr.sip.headers import Headers
from ivr.sip.message import Request, serialize
from ivr.sip.throttle import Throttle
from ivr.sip.transport import Source

REALM = "ivr.local"


def yaml_text(trusted=False):
    return f"""
realm: {REALM}
domains: [pbx.example]
require_trusted_sources: {"true" if trusted else "false"}
extensions:
  "2001":
    ha1_md5: {compute_ha1("2001", REALM, "demo2001", "MD5")}
    ha1_sha256: {compute_ha1("2001", REALM, "demo2001", "SHA-256")}
    context: staff
    trunks: [carrier1]
  "2002":
    ha1_md5: {compute_ha1("2002", REALM, "demo2002", "MD5")}
    ha1_sha256: {compute_ha1("2002", REALM, "demo2002", "SHA-256")}
trunks:
  carrier1:
    address: sip.carrier.example:5080
    username: acct
    password_env: CARRIER_PW
    allow_from: [203.0.113.10, 198.18.0.0/24]
"""


INTERNET = Source("UDP", "192.0.2.50", 5060)


@pytest.fixture
def auth():
    return make(False)


def make(trusted):
    cfg, errors = parse_extensions(yaml_text(trusted), "t.yaml", environ={"CARRIER_PW": "s3cret"})
    assert errors == []
    clock = Clock()
    clock.advance(1000)
    return InviteAuthenticator(cfg, NonceManager(b"n" * 32), clock, Throttle(), local_hosts=["127.0.0.1"])


def invite(from_uri, to="sip:2002@127.0.0.1", cseq=1, authorization=None):
    h = Headers()
    h.add("Via", f"SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKinv{cseq}")
    h.add("Max-Forwards", "70")
    h.add("From", f"<{from_uri}>;tag=abc")
    h.add("To", f"<{to}>")
    h.add("Call-ID", "call-1")
    h.add("CSeq", f"{cseq} INVITE")
    h.add("Contact", "<sip:x@10.0.0.5>")
    if authorization:
        h.add("Proxy-Authorization", authorization)
    return Request("INVITE", to, h)


def answer(response, user, password, cseq=2, nc=1, from_host="127.0.0.1"):
    ch = parse_challenge(response.headers.get_all("Proxy-Authenticate")[0])
    value = build_authorization(ch, "INVITE", "sip:2002@127.0.0.1", user, password, cnonce="cn", nc=nc)
    return invite(f"sip:{user}@{from_host}", cseq=cseq, authorization=value)


def test_trunk_source_is_a_trunk_call_without_digest(auth):
    for host in ("203.0.113.10", "198.18.0.77"):
        result = auth.check(invite("sip:+15551234567@carrier.example"), Source("UDP", host, 5060))
        assert result.caller.kind is CallerKind.TRUNK and result.caller.trunk.name == "carrier1"
        assert result.caller.trunk.password == "s3cret"


def test_anonymous_internet_caller_to_did_is_allowed(auth):
    result = auth.check(invite("sip:+15550001111@elsewhere.example"), INTERNET)
    assert result.caller.kind is CallerKind.ANONYMOUS and result.caller.context is None
    assert result.response is None and not result.drop


def test_require_trusted_sources_refuses_anonymous():
    result = make(True).check(invite("sip:+15550001111@elsewhere.example"), INTERNET)
    assert result.caller is None and result.response.status == 403


@pytest.mark.parametrize("from_host", ["127.0.0.1", "ivr.local", "PBX.example"])
def test_claiming_to_be_local_is_challenged_then_authenticated(auth, from_host):
    first = auth.check(invite(f"sip:2001@{from_host}"), INTERNET)
    assert first.caller is None and first.response.status == 407
    assert [parse_challenge(v).algorithm for v in first.response.headers.get_all("Proxy-Authenticate")] == \
        ["SHA-256", "MD5"]
    second = auth.check(answer(first.response, "2001", "demo2001", from_host=from_host), INTERNET)
    assert second.caller.kind is CallerKind.EXTENSION
    assert second.caller.extension.number == "2001" and second.caller.context == "staff"


def test_wrong_password_and_unknown_user_get_the_same_403(auth):
    r1 = auth.check(invite("sip:2001@127.0.0.1"), INTERNET).response
    r2 = auth.check(invite("sip:7777@127.0.0.1"), INTERNET).response
    norm = lambda r, u: re.sub(r'(nonce="[^"]*"|tag=[0-9a-f]{12})', "X", serialize(r).decode()).replace(u, "U")
    assert norm(r1, "2001") == norm(r2, "7777")
    f1 = auth.check(answer(r1, "2001", "bad"), INTERNET).response
    f2 = auth.check(answer(r2, "7777", "bad"), INTERNET).response
    assert f1.status == f2.status == 403
    assert norm(f1, "2001") == norm(f2, "7777")


def test_replayed_proxy_authorization_is_challenged_again(auth):
    first = auth.check(invite("sip:2001@127.0.0.1"), INTERNET).response
    ok = answer(first, "2001", "demo2001")
    assert auth.check(ok, INTERNET).caller.kind is CallerKind.EXTENSION
    again = auth.check(ok, INTERNET)
    assert again.caller is None and again.response.status == 407


def test_stale_nonce_407_with_stale(auth):
    first = auth.check(invite("sip:2001@127.0.0.1"), INTERNET).response
    auth.clock.advance(400)
    result = auth.check(answer(first, "2001", "demo2001"), INTERNET)
    assert result.response.status == 407
    assert all(parse_challenge(v).stale for v in result.response.headers.get_all("Proxy-Authenticate"))


def test_proxy_authorization_from_a_foreign_domain_is_still_checked(auth):
    first = auth.check(invite("sip:2001@127.0.0.1"), INTERNET).response
    forged = answer(first, "2001", "bad", from_host="elsewhere.example")
    assert auth.check(forged, INTERNET).response.status == 403


def test_repeated_failures_get_the_source_dropped(auth):
    for _ in range(5):
        first = auth.check(invite("sip:2001@127.0.0.1"), INTERNET).response
        assert auth.check(answer(first, "2001", "guess"), INTERNET).response.status == 403
    dropped = auth.check(invite("sip:+1555@elsewhere.example"), INTERNET)
    assert dropped.drop and dropped.caller is None and dropped.response is None
    assert auth.check(invite("sip:+1555@elsewhere.example"), Source("UDP", "192.0.2.51", 5060)).caller
    auth.clock.advance(300)
    assert not auth.check(invite("sip:+1555@elsewhere.example"), INTERNET).drop


def test_trunk_use_needs_an_authenticated_extension_that_lists_it(auth):
    first = auth.check(invite("sip:2001@127.0.0.1"), INTERNET).response
    alice = auth.check(answer(first, "2001", "demo2001"), INTERNET).caller
    first = auth.check(invite("sip:2002@127.0.0.1", cseq=3), INTERNET).response
    bob = auth.check(answer(first, "2002", "demo2002", cseq=4), INTERNET).caller
    trunk_caller = auth.check(invite("sip:x@carrier"), Source("UDP", "203.0.113.10", 5060)).caller
    anonymous = auth.check(invite("sip:x@elsewhere"), INTERNET).caller
    assert auth.may_use_trunk(alice, "carrier1")
    assert not auth.may_use_trunk(alice, "nosuch")
    assert not auth.may_use_trunk(bob, "carrier1")
    assert not auth.may_use_trunk(trunk_caller, "carrier1")
    assert not auth.may_use_trunk(anonymous, "carrier1")
    assert not auth.may_use_trunk(None, "carrier1")


# -- A server that is not on 5060: phones put their AOR in From without a port ---------------

def on_port(port):
    a = make(False)
    a.local_port = port
    return a


@pytest.mark.parametrize("from_uri", ["sip:2001@127.0.0.1", "sip:2001@127.0.0.1:5072",
                                      "sip:2001@127.0.0.1:5060", "sip:2001@127.0.0.1:5070"])
def test_an_extension_at_our_address_with_any_port_or_none_is_challenged(from_uri):
    auth = on_port(5070)
    first = auth.check(invite(from_uri), INTERNET)
    assert first.caller is None and first.response.status == 407
    second = auth.check(answer(first.response, "2001", "demo2001"), INTERNET)
    assert second.caller.kind is CallerKind.EXTENSION and second.caller.context == "staff"


@pytest.mark.parametrize("from_uri", ["sip:someone@127.0.0.1", "sip:someone@127.0.0.1:5072",
                                      "sip:2001@192.0.2.99", "sip:2001@192.0.2.99:5070"])
def test_a_non_extension_at_our_address_or_an_extension_elsewhere_is_anonymous(from_uri):
    result = on_port(5070).check(invite(from_uri), INTERNET)
    assert result.caller.kind is CallerKind.ANONYMOUS and result.response is None


def test_our_address_with_our_own_port_is_challenged_for_anyone():
    result = on_port(5070).check(invite("sip:someone@127.0.0.1:5070"), INTERNET)
    assert result.caller is None and result.response.status == 407
    # ... and without a port only when we are on 5060.
    assert on_port(5060).check(invite("sip:someone@127.0.0.1"), INTERNET).response.status == 407
    assert on_port(5070).check(invite("sip:someone@127.0.0.1"), INTERNET).response is None


def test_an_escaped_extension_user_is_still_an_extension():
    result = on_port(5070).check(invite("sip:%32001@127.0.0.1"), INTERNET)
    assert result.response.status == 407
