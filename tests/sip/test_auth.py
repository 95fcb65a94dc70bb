"""Digest authentication: RFC vectors, header syntax, nonces, replay, RFC 8760 algorithm choice."""
import hashlib
import pathlib

import pytest
from hypothesis import given, settings, strategies as st

from ivr.sip.auth import (
    AuthError, AuthHeaderError, Challenge, Credentials, NonceManager, NonceStatus, UnsupportedChallenge,
    build_authorization, choose_challenge, compute_ha1, compute_response, format_challenge,
    format_credentials, parse_challenge, parse_credentials, verify,
)

RFC2617_CHALLENGE = ('Digest realm="testrealm@host.com", qop="auth,auth-int", '
                     'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"')
RFC2617_AUTHORIZATION = ('Digest username="Mufasa", realm="testrealm@host.com", '
                         'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
                         'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
                         'opaque="5ccc069c403ebaf9f0171e9517f40e41"')
RFC7616_CHALLENGE = ('Digest\r\n    realm="http-auth@example.org",\r\n    qop="auth, auth-int",\r\n'
                     '    algorithm=SHA-256,\r\n    nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",\r\n'
                     '    opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
RFC7616_RESPONSE = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"


# ---------------------------------------------------------------- RFC test vectors

def test_rfc2617_section_3_5_vector():
    ch = parse_challenge(RFC2617_CHALLENGE)
    assert ch == Challenge("Digest", "testrealm@host.com", "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                           "5ccc069c403ebaf9f0171e9517f40e41", "MD5", ("auth", "auth-int"), False)
    value = build_authorization(ch, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", cnonce="0a4f113b")
    creds = parse_credentials(value)
    assert creds.response == "6629fae49393a05397450978507c4ef1"
    expected = parse_credentials(RFC2617_AUTHORIZATION)
    assert (creds.username, creds.realm, creds.nonce, creds.uri, creds.response, creds.cnonce, creds.nc,
            creds.qop, creds.opaque) == (expected.username, expected.realm, expected.nonce, expected.uri,
                                         expected.response, expected.cnonce, expected.nc, expected.qop,
                                         expected.opaque)
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    assert verify(expected, "GET", ha1)
    assert not verify(expected, "POST", ha1)


def test_rfc7616_section_3_9_1_sha256_vector():
    ch = parse_challenge(RFC7616_CHALLENGE)
    assert ch.algorithm == "SHA-256" and ch.qop_options == ("auth", "auth-int")
    value = build_authorization(ch, "GET", "/dir/index.html", "Mufasa", "Circle of Life",
                                cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", nc=1)
    creds = parse_credentials(value)
    assert creds.response == RFC7616_RESPONSE
    assert (creds.algorithm, creds.qop, creds.nc) == ("SHA-256", "auth", 1)
    assert "nc=00000001" in value and "algorithm=SHA-256" in value and "qop=auth" in value
    ha1 = compute_ha1("Mufasa", "http-auth@example.org", "Circle of Life", "SHA-256")
    assert ha1 == hashlib.sha256(b"Mufasa:http-auth@example.org:Circle of Life").hexdigest()
    assert verify(creds, "GET", ha1)


def test_rfc7616_md5_vector_same_exchange():
    # RFC 7616 3.9.1 also gives the MD5 response for the same parameters
    ch = parse_challenge(RFC7616_CHALLENGE.replace("SHA-256", "MD5"))
    value = build_authorization(ch, "GET", "/dir/index.html", "Mufasa", "Circle of Life",
                                cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")
    assert parse_credentials(value).response == "8ca523f5e9506fed4657c9700eebdbec"


def test_legacy_no_qop_rfc2069():
    ch = parse_challenge('Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"')
    value = build_authorization(ch, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", cnonce="ignored")
    creds = parse_credentials(value)
    assert creds.qop is None and creds.nc is None and creds.cnonce is None
    ha1 = hashlib.md5(b"Mufasa:testrealm@host.com:Circle Of Life").hexdigest()
    ha2 = hashlib.md5(b"GET:/dir/index.html").hexdigest()
    assert creds.response == hashlib.md5(f"{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:{ha2}".encode()).hexdigest()
    assert verify(creds, "GET", ha1)


@pytest.mark.parametrize("algorithm, hashname", [("MD5-sess", "md5"), ("SHA-256-sess", "sha256")])
def test_sess_algorithms(algorithm, hashname):
    def h(s):
        return hashlib.new(hashname, s.encode()).hexdigest()
    ch = parse_challenge(f'Digest realm="r", nonce="n", qop="auth", algorithm={algorithm.lower()}')
    assert ch.algorithm == algorithm
    value = build_authorization(ch, "INVITE", "sip:bob@b.example", "alice", "pw", cnonce="cn", nc=3)
    ha1 = h(f"{h('alice:r:pw')}:n:cn")
    expected = h(f"{ha1}:n:00000003:cn:auth:{h('INVITE:sip:bob@b.example')}")
    creds = parse_credentials(value)
    assert creds.response == expected
    assert verify(creds, "INVITE", compute_ha1("alice", "r", "pw", algorithm))


def test_auth_int_hashes_the_body():
    ch = parse_challenge('Digest realm="r", nonce="n", qop="auth-int"')
    body = b"v=0\r\n"
    creds = parse_credentials(build_authorization(ch, "INVITE", "sip:x@y", "u", "p", cnonce="c", body=body))
    ha1 = compute_ha1("u", "r", "p")
    assert creds.qop == "auth-int"
    assert verify(creds, "INVITE", ha1, body=body)
    assert not verify(creds, "INVITE", ha1, body=b"v=1\r\n")


def test_build_with_precomputed_ha1_matches_password():
    ch = parse_challenge(RFC2617_CHALLENGE)
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    assert build_authorization(ch, "GET", "/dir/index.html", "Mufasa", ha1=ha1, cnonce="0a4f113b") == \
        build_authorization(ch, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", cnonce="0a4f113b")
    with pytest.raises(TypeError):
        build_authorization(ch, "GET", "/", "Mufasa", cnonce="x")
    with pytest.raises(TypeError):
        build_authorization(ch, "GET", "/", "Mufasa", "pw", ha1, cnonce="x")


def test_wrong_password_fails_verification():
    ch = parse_challenge(RFC2617_CHALLENGE)
    creds = parse_credentials(build_authorization(ch, "REGISTER", "sip:example.com", "Mufasa", "wrong",
                                                  cnonce="abc"))
    assert not verify(creds, "REGISTER", compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life"))


def test_unsupported_challenges():
    with pytest.raises(UnsupportedChallenge):
        build_authorization(parse_challenge('Digest realm="r", nonce="n", algorithm=SHA-1'), "GET", "/", "u", "p",
                            cnonce="c")
    with pytest.raises(UnsupportedChallenge):
        build_authorization(parse_challenge('Digest realm="r", nonce="n", qop="auth-conf"'), "GET", "/", "u", "p",
                            cnonce="c")
    with pytest.raises(UnsupportedChallenge):
        build_authorization(parse_challenge("Basic realm=x"), "GET", "/", "u", "p", cnonce="c")
    creds = Credentials("u", "r", "n", "/", "00", algorithm="SHA-1")
    assert verify(creds, "GET", "00") is False  # peer's unknown algorithm: a "no", not an exception


# ---------------------------------------------------------------- header syntax

def test_unknown_scheme_from_rfc4475_regaut01():
    raw = (pathlib.Path(__file__).resolve().parents[1] / "data" / "sip-torture" / "rfc4475" / "regaut01.dat").read_bytes()
    line = next(l for l in raw.split(b"\r\n") if l.lower().startswith(b"authorization:"))
    creds = parse_credentials(line.split(b":", 1)[1].decode().strip())
    assert creds.scheme == "NoOneKnowsThisScheme" and creds.raw == "opaque-data=here"
    assert creds.username is None and not verify(creds, "REGISTER", "x")
    ch = parse_challenge("NewAuth realm=\"apps\", type=1, title=\"Login to \\\"apps\\\"\"")
    assert ch.scheme == "NewAuth" and ch.realm is None
    assert parse_challenge("Basic dXNlcjpwYXNz").scheme == "Basic"


def test_quoting_escapes_case_and_whitespace():
    ch = parse_challenge('dIgEsT  REALM = "a \\"quoted\\" realm, with comma" ,NONCE="x\\\\y",'
                         'Algorithm=md5 , STALE=true,qop=auth')
    assert ch.scheme == "Digest" and ch.realm == 'a "quoted" realm, with comma'
    assert ch.nonce == "x\\y" and ch.algorithm == "MD5" and ch.stale and ch.qop_options == ("auth",)
    assert parse_challenge(format_challenge(ch.realm, ch.nonce, stale=True)) == \
        Challenge("Digest", ch.realm, ch.nonce, None, "MD5", ("auth",), True)


def test_challenge_roundtrip_all_fields():
    value = format_challenge("sip.example.com", "abc/def=", algorithm="sha-256", qop=("auth", "auth-int"),
                             opaque="op", stale=True, domain="sip:example.com")
    assert value.startswith("Digest ")
    ch = parse_challenge(value)
    assert ch == Challenge("Digest", "sip.example.com", "abc/def=", "op", "SHA-256", ("auth", "auth-int"),
                           True, "sip:example.com")
    assert parse_challenge(format_challenge("r", "n", qop=None)).qop_options == ()


def test_credentials_roundtrip():
    c = Credentials("bob", 'realm "x"', "n0nce", "sip:bob@biloxi.com", "a" * 32, "SHA-256", "cn", 255,
                    "auth", "opq")
    text = format_credentials(c)
    assert "nc=000000ff" in text
    assert parse_credentials(text) == c
    legacy = Credentials("bob", "r", "n", "sip:x", "b" * 32)
    assert parse_credentials(format_credentials(legacy)) == legacy


def test_sip_style_unquoted_leniency():
    creds = parse_credentials('Digest username="bob", realm="biloxi.com", nonce="dcd98b", '
                              'uri=sip:bob@biloxi.com, response="245f23415f11432b3434341c022", algorithm=MD5')
    assert creds.uri == "sip:bob@biloxi.com" and creds.qop is None


@pytest.mark.parametrize("value", [
    "",
    "   ",
    'Digest realm="unterminated',
    'Digest realm="r" nonce="n"',             # missing comma
    'Digest realm="r", nonce="n",',           # trailing comma
    'Digest realm="r",, nonce="n"',
    'Digest realm="r", realm="s", nonce="n"',  # duplicate
    'Digest realm',
    'Digest =x',
    'Digest nonce="n"',                        # no realm
    'Digest realm="r"',                        # no nonce
    '"Digest" realm="r"',
])
def test_garbage_challenges(value):
    with pytest.raises(AuthHeaderError):
        parse_challenge(value)


@pytest.mark.parametrize("value", [
    'Digest username="u", realm="r", nonce="n", uri="/"',              # no response
    'Digest username="u", realm="r", nonce="n", uri="/", response="x", qop=auth, cnonce="c"',  # no nc
    'Digest username="u", realm="r", nonce="n", uri="/", response="x", qop=auth, cnonce="c", nc=1',
    'Digest username="u", realm="r", nonce="n", uri="/", response="x", qop=auth, cnonce="c", nc=0000000g',
    'Digest username="u" realm="r"',
])
def test_garbage_credentials(value):
    with pytest.raises(AuthHeaderError):
        parse_credentials(value)
    assert issubclass(AuthHeaderError, AuthError) and issubclass(AuthError, ValueError)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=120))
def test_arbitrary_header_values_never_crash(text):
    for parse in (parse_challenge, parse_credentials):
        try:
            parse(text)
        except AuthHeaderError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=40),
       st.text(alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=40))
def test_quoted_values_roundtrip(realm, nonce):
    ch = parse_challenge(format_challenge(realm, nonce, opaque=realm + nonce))
    assert (ch.realm, ch.nonce, ch.opaque) == (realm, nonce, realm + nonce)


# ---------------------------------------------------------------- RFC 8760 choice

def test_choose_strongest_challenge():
    md5 = parse_challenge('Digest realm="r", nonce="n1", qop="auth", algorithm=MD5')
    sha = parse_challenge('Digest realm="r", nonce="n2", qop="auth", algorithm=SHA-256')
    other = parse_challenge("NewAuth realm=x")
    assert choose_challenge([md5, sha]) is sha
    assert choose_challenge([sha, md5]) is sha
    assert choose_challenge([other, md5]) is md5
    weird = parse_challenge('Digest realm="r", nonce="n3", algorithm=SHA-1024')
    assert choose_challenge([weird, md5]) is md5
    with pytest.raises(UnsupportedChallenge):
        choose_challenge([other, weird])
    with pytest.raises(UnsupportedChallenge):
        choose_challenge([])


# ---------------------------------------------------------------- server side: nonces and replay

def counter_random():
    state = {"n": 0}

    def rand(k):
        state["n"] += 1
        return state["n"].to_bytes(k, "big")
    return rand


def test_nonce_lifecycle():
    mgr = NonceManager(b"s3cret", lifetime=300, random=counter_random())
    nonce = mgr.issue(1000.0)
    assert mgr.issue(1000.0) != nonce  # two nonces issued in the same instant differ
    assert mgr.check(nonce, 1000.0) is NonceStatus.VALID
    assert mgr.check(nonce, 1300.0) is NonceStatus.VALID
    assert mgr.check(nonce, 1300.5) is NonceStatus.STALE
    assert mgr.check(nonce, 999.0) is NonceStatus.VALID  # small clock skew tolerated
    assert mgr.check(nonce, 900.0) is NonceStatus.INVALID  # "issued" in the far future: not ours


def test_tampered_and_foreign_nonces():
    mgr = NonceManager(b"s3cret")
    nonce = mgr.issue(50.0)
    flipped = nonce[:3] + ("A" if nonce[3] != "A" else "B") + nonce[4:]
    assert mgr.check(flipped, 50.0) is NonceStatus.INVALID
    assert NonceManager(b"other").check(nonce, 50.0) is NonceStatus.INVALID
    for junk in ["", "x", "dcd98b7102dd2f0e8b11d0f600bfb0c093", "é" * 10, nonce + "A", nonce[:-1], "====" * 11]:
        assert mgr.check(junk, 50.0) is NonceStatus.INVALID
        assert mgr.check_nc(junk, 1) is False
    with pytest.raises(ValueError):
        NonceManager(b"")


def test_nonce_count_replay():
    mgr = NonceManager(b"k", lifetime=60)
    nonce = mgr.issue(0.0)
    assert mgr.check_nc(nonce, 1, now=1.0)
    assert not mgr.check_nc(nonce, 1, now=2.0)  # replayed
    assert mgr.check_nc(nonce, 2, now=3.0)
    assert mgr.check_nc(nonce, 5, now=3.0)  # gaps are allowed (parallel requests)
    assert not mgr.check_nc(nonce, 4, now=3.0)
    assert not mgr.check_nc(nonce, 0) and not mgr.check_nc(nonce, None)
    other = mgr.issue(0.0)
    assert mgr.check_nc(other, 1)  # counts are per nonce


def test_replay_table_is_bounded():
    mgr = NonceManager(b"k", lifetime=10, max_tracked=50)
    for i in range(200):
        assert mgr.check_nc(mgr.issue(float(i)), 1, now=float(i))
        assert mgr.tracked <= 11  # only nonces younger than the lifetime are remembered
    assert not mgr.check_nc(mgr.issue(0.0), 1, now=200.0)  # expired nonce: refused, not stored
    capped = NonceManager(b"k", lifetime=10_000, max_tracked=50)
    for i in range(200):
        capped.check_nc(capped.issue(1.0), 1, now=1.0)
    assert capped.tracked == 50


def test_full_server_flow_with_stale_rechallenge():
    mgr = NonceManager(b"server-key", lifetime=30)
    realm, ha1 = "ivr.example", compute_ha1("1001", "ivr.example", "pw", "SHA-256")
    header = format_challenge(realm, mgr.issue(100.0), algorithm="SHA-256")
    reply = build_authorization(parse_challenge(header), "REGISTER", "sip:ivr.example", "1001", "pw",
                                cnonce="c1")
    creds = parse_credentials(reply)
    assert mgr.check(creds.nonce, 105.0) is NonceStatus.VALID
    assert verify(creds, "REGISTER", ha1) and mgr.check_nc(creds.nonce, creds.nc, now=105.0)
    assert not mgr.check_nc(creds.nonce, creds.nc, now=106.0)  # the same request replayed
    assert mgr.check(creds.nonce, 200.0) is NonceStatus.STALE  # -> 401 with stale=TRUE
    again = parse_challenge(format_challenge(realm, mgr.issue(200.0), algorithm="SHA-256", stale=True))
    assert again.stale
    creds2 = parse_credentials(build_authorization(again, "REGISTER", "sip:ivr.example", "1001", "pw",
                                                   cnonce="c2"))
    assert mgr.check(creds2.nonce, 201.0) is NonceStatus.VALID and verify(creds2, "REGISTER", ha1)


def test_compute_response_rejects_bad_qop_use():
    with pytest.raises(UnsupportedChallenge):
        compute_response(ha1="x", nonce="n", method="GET", uri="/", qop="auth")  # no cnonce/nc


def test_uri_object_is_stringified():
    class Uri:
        def __str__(self):
            return "sip:bob@biloxi.com"
    ch = parse_challenge(RFC2617_CHALLENGE)
    assert build_authorization(ch, "INVITE", Uri(), "u", "p", cnonce="c") == \
        build_authorization(ch, "INVITE", "sip:bob@biloxi.com", "u", "p", cnonce="c")
