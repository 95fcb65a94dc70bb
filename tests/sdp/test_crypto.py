"""SDES a=crypto (RFC 4568): the RFC's own examples read and written back, key checks, errors."""
import base64

import pytest

from ivr.sdp import SdpError, parse_sdp, serialize_sdp
from ivr.sdp.crypto import (
    SUITES, CryptoAttribute, CryptoError, KeyParam, MediaEncryption, SrtpKeys, crypto_attributes,
    new_key, offer_lines, parse_crypto,
)

# RFC 4568 section 4 (the example attribute), 6.1 (an MKI without a lifetime) and 8.1
# (the offer's two lines, the second with two keys, and the answer).
RFC4568_SECTION4 = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32"
RFC4568_MKI_ONLY = "1 AES_CM_128_HMAC_SHA1_80 inline:YUJDZGVmZ2hpSktMbW9QUXJzVHVWd3l6MTIzNDU2|1066:4"
RFC4568_OFFER_1 = ("1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4 "
                   "FEC_ORDER=FEC_SRTP")
RFC4568_OFFER_2 = ("2 F8_128_HMAC_SHA1_80 inline:MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm|2^20|1:4;"
                   "inline:QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5|2^20|2:4 FEC_ORDER=FEC_SRTP")
RFC4568_ANSWER = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4"


@pytest.mark.parametrize("value", [RFC4568_SECTION4, RFC4568_MKI_ONLY, RFC4568_OFFER_1,
                                   RFC4568_OFFER_2, RFC4568_ANSWER])
def test_rfc4568_examples_round_trip(value):
    assert parse_crypto(value).value() == value


def test_rfc4568_section4_fields():
    c = parse_crypto(RFC4568_SECTION4)
    assert (c.tag, c.suite, c.session_params) == (1, "AES_CM_128_HMAC_SHA1_80", ())
    (key,) = c.keys
    assert key.key_salt == base64.b64decode("PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR")
    assert len(key.key_salt) == 30
    assert key.lifetime == "2^20" and key.lifetime_packets == 1 << 20
    assert key.mki == (1, 32)


def test_rfc4568_mki_without_lifetime_and_two_keys():
    c = parse_crypto(RFC4568_MKI_ONLY)
    assert c.keys[0].lifetime is None and c.keys[0].mki == (1066, 4)
    f8 = parse_crypto(RFC4568_OFFER_2)
    assert f8.suite == "F8_128_HMAC_SHA1_80" and [k.mki for k in f8.keys] == [(1, 4), (2, 4)]
    assert f8.session_params == ("FEC_ORDER=FEC_SRTP",)
    assert parse_crypto("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|1066"
                        ).keys[0].lifetime_packets == 1066


def test_usable_lines():
    assert parse_crypto(RFC4568_SECTION4).usable() == "an MKI is not supported"
    assert "not supported" in parse_crypto(RFC4568_OFFER_2).usable()  # F8 suite
    plain = parse_crypto("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^31")
    assert plain.usable() is None
    for params in ("FEC_ORDER=FEC_SRTP", "WSH=64", "-MY_EXTENSION"):
        assert parse_crypto(f"{plain.value()} {params}").usable() is None
    for params in ("KDR=1", "UNENCRYPTED_SRTP", "UNAUTHENTICATED_SRTP", "FOO"):
        assert params in parse_crypto(f"{plain.value()} {params}").usable()
    short = CryptoAttribute(1, "AEAD_AES_256_GCM", (KeyParam(bytes(30)),))
    assert "44-byte" in short.usable()


def test_an_sdp_carries_the_rfc_offer_whole():
    sdp = ("v=0\r\no=sam 2890844526 2890842807 IN IP4 10.47.16.5\r\ns=SRTP Discussion\r\n"
           "c=IN IP4 168.2.17.12\r\nt=2873397496 2873404696\r\nm=audio 49170 RTP/SAVP 0\r\n"
           f"a=crypto:{RFC4568_OFFER_1}\r\na=crypto:{RFC4568_OFFER_2}\r\n")
    sd = parse_sdp(sdp)
    assert serialize_sdp(sd) == sdp.encode()
    lines = crypto_attributes(sd.media[0].attributes)
    assert [c.value() for c in lines] == [RFC4568_OFFER_1, RFC4568_OFFER_2]


@pytest.mark.parametrize("value", [
    None, "", "1 AES_CM_128_HMAC_SHA1_80", "x AES_CM_128_HMAC_SHA1_80 inline:AAAA",
    "1234567890 AES_CM_128_HMAC_SHA1_80 inline:AAAA", "1 AES-CM inline:AAAA",
    "1 AES_CM_128_HMAC_SHA1_80 uri:http://example.com/key",
    "1 AES_CM_128_HMAC_SHA1_80 inline:", "1 AES_CM_128_HMAC_SHA1_80 inline:not*base64",
    "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|2^20|1:4|5", "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|1:4|2^20",
    "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|2^999", "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|1:0",
    "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|256:1", "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|x",
    "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA;",
])
def test_malformed_lines_are_488_with_warning_306(value):
    with pytest.raises(CryptoError) as info:
        parse_crypto(value)
    assert isinstance(info.value, SdpError)
    assert info.value.status == 488 and info.value.warn_code == 306


def test_crypto_attributes_keeps_a_bad_line_as_its_error():
    found = crypto_attributes([("crypto", "garbage"), ("rtpmap", "0 PCMU/8000"),
                               ("crypto", RFC4568_ANSWER)])
    assert isinstance(found[0], CryptoError) and found[1].value() == RFC4568_ANSWER


def test_fresh_keys_have_the_suite_length_and_differ():
    for name, suite in SUITES.items():
        a, b = new_key(name), new_key(name)
        assert len(a) == suite.inline_length and a != b
    lines = offer_lines()
    assert [(c.tag, c.suite) for c in lines] == [(1, "AES_CM_128_HMAC_SHA1_80"), (2, "AES_CM_128_HMAC_SHA1_32")]
    assert all(c.usable() is None for c in lines) and lines[0].key_salt != lines[1].key_salt
    assert parse_crypto(lines[0].value()) == lines[0]
    with pytest.raises(ValueError):
        offer_lines(("F8_128_HMAC_SHA1_80",))


def test_keys_never_show_in_repr():
    key = bytes(range(30))
    text = repr(SrtpKeys("AES_CM_128_HMAC_SHA1_80", 1, key, key)) + repr(KeyParam(key))
    assert repr(key) not in text and base64.b64encode(key).decode() not in text


def test_policy_values():
    assert MediaEncryption.of("required") is MediaEncryption.REQUIRED
    assert MediaEncryption.of(MediaEncryption.OFF) is MediaEncryption.OFF
    with pytest.raises(ValueError, match="required, optional, off"):
        MediaEncryption.of("mandatory")
