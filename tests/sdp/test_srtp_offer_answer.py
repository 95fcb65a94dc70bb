"""SRTP in offer/answer: the media_encryption policy x offer profile x signalling matrix, the
answer's key, our offers, their answers, re-answers."""
import base64
import itertools

import pytest

from ivr.sdp import (
    EncryptionRefused, KeysNeedTls, NoCommonCodec, OfferAnswerError, make_answer, make_offer,
    make_reanswer, negotiate_answer, parse_sdp, serialize_sdp,
)
from ivr.sdp.crypto import CryptoAttribute, KeyParam, crypto_attributes, parse_crypto
from tests.sdp.test_offer_answer import fixture

KEY80 = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"  # RFC 4568 8.1's key, without its MKI


def offer(proto="RTP/SAVP", *crypto):
    lines = "".join(f"a=crypto:{c}\r\n" for c in crypto)
    return parse_sdp("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
                     f"m=audio 4000 {proto} 0 101\r\na=rtpmap:101 telephone-event/8000\r\n{lines}")


SAVP = ("RTP/SAVP", f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY80}")
PLAIN = ("RTP/AVP",)


def answer(sd, **kw):
    return make_answer(sd, "10.0.0.2", 5000, session_id=7, version=1, **kw)


# policy x offer x secure signalling -> "srtp", "plain" or the refusal's Warning code
MATRIX = {
    ("required", "plain", True): 302, ("required", "plain", False): 302,
    ("required", "savp", True): "srtp", ("required", "savp", False): 399,
    ("optional", "plain", True): "plain", ("optional", "plain", False): "plain",
    ("optional", "savp", True): "srtp", ("optional", "savp", False): 399,
    ("off", "plain", True): "plain", ("off", "plain", False): "plain",
    ("off", "savp", True): 302, ("off", "savp", False): 302,
}


@pytest.mark.parametrize("policy,kind,secure", list(itertools.product(
    ("required", "optional", "off"), ("plain", "savp"), (True, False))))
def test_policy_matrix(policy, kind, secure):
    expected = MATRIX[policy, kind, secure]
    sd = offer(*(SAVP if kind == "savp" else PLAIN))
    if isinstance(expected, int):
        with pytest.raises(EncryptionRefused) as info:
            answer(sd, media_encryption=policy, secure_signalling=secure)
        assert info.value.status == 488 and info.value.warn_code == expected
        assert isinstance(info.value, OfferAnswerError)
        return
    sdp, neg = answer(sd, media_encryption=policy, secure_signalling=secure)
    m = sdp.media[0]
    if expected == "plain":
        assert m.proto == "RTP/AVP" and neg.srtp is None and not m.has_attribute("crypto")
        return
    assert m.proto == "RTP/SAVP"
    (ours,) = crypto_attributes(m.attributes)
    assert (ours.tag, ours.suite) == (1, "AES_CM_128_HMAC_SHA1_80") and ours.usable() is None
    assert neg.srtp.suite == "AES_CM_128_HMAC_SHA1_80" and neg.srtp.tag == 1
    assert neg.srtp.remote_key == base64.b64decode(KEY80)
    assert neg.srtp.local_key == ours.key_salt != neg.srtp.remote_key


def test_insecure_override_accepts_keys_over_plain_signalling():
    sdp, neg = answer(offer(*SAVP), media_encryption="required", secure_signalling=False,
                      allow_insecure_keys=True)
    assert sdp.media[0].proto == "RTP/SAVP" and neg.srtp is not None


def test_the_default_is_off_as_before():
    with pytest.raises(EncryptionRefused) as info:
        answer(offer(*SAVP))
    assert "off" in str(info.value)
    assert answer(offer(*PLAIN))[1].srtp is None


def test_fresh_key_per_answer():
    keys = {answer(offer(*SAVP), media_encryption="optional", secure_signalling=True)[1].srtp.local_key
            for _ in range(3)}
    assert len(keys) == 3


def test_first_usable_line_wins_and_its_tag_is_answered():
    sd = offer("RTP/SAVP",
               f"1 F8_128_HMAC_SHA1_80 inline:{KEY80}",                       # suite we lack
               f"2 AES_CM_128_HMAC_SHA1_80 inline:{KEY80}|2^20|1:4",         # MKI
               "3 AES_CM_128_HMAC_SHA1_80 inline:%%%",                        # malformed
               f"4 AES_CM_128_HMAC_SHA1_80 inline:{KEY80} KDR=2",             # KDR
               f"5 AES_CM_128_HMAC_SHA1_32 inline:{KEY80}|2^31 WSH=64",
               f"6 AES_CM_128_HMAC_SHA1_80 inline:{KEY80}")
    sdp, neg = answer(sd, media_encryption="required", secure_signalling=True)
    (ours,) = crypto_attributes(sdp.media[0].attributes)
    assert (ours.tag, ours.suite) == (5, "AES_CM_128_HMAC_SHA1_32") and neg.srtp.tag == 5


def test_srtp_suites_limit_what_we_accept():
    gcm = offer("RTP/SAVP", "1 AEAD_AES_256_GCM inline:" + base64.b64encode(bytes(44)).decode(),
                f"2 AES_CM_128_HMAC_SHA1_80 inline:{KEY80}")
    assert answer(gcm, media_encryption="required", secure_signalling=True)[1].srtp.suite == "AEAD_AES_256_GCM"
    neg = answer(gcm, media_encryption="required", secure_signalling=True,
                 srtp_suites=("AES_CM_128_HMAC_SHA1_80",))[1]
    assert (neg.srtp.suite, neg.srtp.tag) == ("AES_CM_128_HMAC_SHA1_80", 2)


@pytest.mark.parametrize("crypto", [(), (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY80}|2^20|1:4",),
                                    ("1 AES_CM_128_HMAC_SHA1_80 garbage",),
                                    ("1 AES_CM_128_HMAC_SHA1_80 inline:AAAA",)])
def test_savp_without_a_usable_line_is_488_306(crypto):
    with pytest.raises(EncryptionRefused) as info:
        answer(offer("RTP/SAVP", *crypto), media_encryption="optional", secure_signalling=True)
    assert info.value.status == 488 and info.value.warn_code == 306


def test_savpf_is_accepted_and_a_plain_stream_is_preferred_only_when_allowed():
    _, neg = answer(offer("RTP/SAVPF", SAVP[1]), media_encryption="required", secure_signalling=True)
    assert neg.srtp is not None
    both = parse_sdp(serialize_sdp(offer(*PLAIN)).decode()
                     + f"m=audio 4002 RTP/SAVP 0\r\na=crypto:{SAVP[1]}\r\n")
    sdp, neg = answer(both, media_encryption="required", secure_signalling=True)
    assert neg.media_index == 1 and [m.port for m in sdp.media] == [0, 5000]
    sdp, neg = answer(both, media_encryption="optional", secure_signalling=True)
    assert neg.media_index == 0 and neg.srtp is None


def test_no_common_codec_still_wins_when_encryption_is_fine():
    sd = parse_sdp(serialize_sdp(offer(*SAVP)).decode().replace("RTP/SAVP 0 101", "RTP/SAVP 18"))
    with pytest.raises(NoCommonCodec):
        answer(sd, media_encryption="optional", secure_signalling=True)


def test_baresip_srtp_offer():
    sd = fixture("baresip-1.0-srtp-offer.sdp")
    with pytest.raises(EncryptionRefused):  # before #15 it was NoCommonCodec: SAVP unknown
        answer(sd)
    sdp, neg = answer(sd, media_encryption="optional", secure_signalling=True)
    assert neg.codec == "PCMU" and neg.srtp.remote_key == base64.b64decode(
        "vXMep/SIW4iMD21StWgrmy024dJZfOAM7qFFJfsJ")
    assert b"RTP/SAVP" in serialize_sdp(sdp)


def test_reanswer_keeps_our_key_and_version():
    sd = offer(*SAVP)
    first, neg1 = answer(sd, media_encryption="required", secure_signalling=True)
    again, neg2 = make_reanswer(sd, first, "10.0.0.2", 5000, media_encryption="required",
                                secure_signalling=True)
    assert neg2.srtp == neg1.srtp and again == first


# ---------------------------------------------------------------- our offers, their answers

def our_offer(**kw):
    return make_offer("10.0.0.2", 5000, session_id=1, version=1, **kw)


def test_offer_matrix():
    assert our_offer().media[0].proto == "RTP/AVP"
    assert our_offer(media_encryption="optional").media[0].proto == "RTP/AVP"
    m = our_offer(media_encryption="required", secure_signalling=True).media[0]
    assert m.proto == "RTP/SAVP"
    assert [(c.tag, c.suite) for c in crypto_attributes(m.attributes)] == [
        (1, "AES_CM_128_HMAC_SHA1_80"), (2, "AES_CM_128_HMAC_SHA1_32")]
    m = our_offer(media_encryption="optional", offer_srtp=True, secure_signalling=True,
                  crypto_suites=("AEAD_AES_128_GCM",)).media[0]
    assert m.proto == "RTP/SAVP" and crypto_attributes(m.attributes)[0].suite == "AEAD_AES_128_GCM"
    with pytest.raises(KeysNeedTls):
        our_offer(media_encryption="required")
    assert our_offer(media_encryption="required", allow_insecure_keys=True).media[0].proto == "RTP/SAVP"
    with pytest.raises(ValueError):
        our_offer(media_encryption="off", offer_srtp=True)
    with pytest.raises(ValueError):
        our_offer(media_encryption="required", offer_srtp=False, secure_signalling=True)


def their_answer(proto, *crypto):
    lines = "".join(f"a=crypto:{c}\r\n" for c in crypto)
    return parse_sdp("v=0\r\no=- 9 9 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n"
                     f"m=audio 6000 {proto} 0\r\n{lines}")


def test_negotiate_their_answer_to_our_srtp_offer():
    ours = our_offer(media_encryption="required", secure_signalling=True)
    mine = {c.tag: c for c in crypto_attributes(ours.media[0].attributes)}
    theirs = CryptoAttribute(2, "AES_CM_128_HMAC_SHA1_32", (KeyParam(bytes(range(30))),))
    neg = negotiate_answer(ours, their_answer("RTP/SAVP", theirs.value()))
    assert (neg.srtp.suite, neg.srtp.tag) == ("AES_CM_128_HMAC_SHA1_32", 2)
    assert neg.srtp.local_key == mine[2].key_salt and neg.srtp.remote_key == bytes(range(30))


@pytest.mark.parametrize("proto,crypto,code", [
    ("RTP/AVP", (), 302),                                                   # answered plain
    ("RTP/SAVP", (), 306),                                                  # no key
    ("RTP/SAVP", (f"3 AES_CM_128_HMAC_SHA1_80 inline:{KEY80}",), 306),      # tag we never offered
    ("RTP/SAVP", (f"1 AES_CM_128_HMAC_SHA1_32 inline:{KEY80}",), 306),      # suite of another tag
    ("RTP/SAVP", (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY80}|2^20|1:4",), 306),  # MKI
    ("RTP/SAVP", (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY80}",) * 2, 306),  # two answers
    ("RTP/SAVP", ("1 AES_CM_128_HMAC_SHA1_80 inline:!!",), 306),            # malformed
])
def test_a_bad_answer_to_our_srtp_offer_is_refused(proto, crypto, code):
    ours = our_offer(media_encryption="required", secure_signalling=True)
    with pytest.raises(OfferAnswerError) as info:
        negotiate_answer(ours, their_answer(proto, *crypto))
    assert info.value.status == 488 and info.value.warn_code == code


def test_an_srtp_answer_to_our_plain_offer_is_refused():
    with pytest.raises(EncryptionRefused):
        negotiate_answer(our_offer(), their_answer("RTP/SAVP", f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY80}"))
    assert negotiate_answer(our_offer(), their_answer("RTP/AVP")).srtp is None


def test_two_of_our_sessions_agree_on_keys():
    """Our UAC's offer answered by our UAS: each side's local key is the other's remote key."""
    ours = our_offer(media_encryption="required", secure_signalling=True)
    sdp, uas = answer(parse_sdp(serialize_sdp(ours)), media_encryption="optional", secure_signalling=True)
    uac = negotiate_answer(ours, parse_sdp(serialize_sdp(sdp)))
    assert uac.srtp.local_key == uas.srtp.remote_key and uac.srtp.remote_key == uas.srtp.local_key
    assert parse_crypto(crypto_attributes(sdp.media[0].attributes)[0].value()).tag == uac.srtp.tag
