"""RFC 3264 offer/answer for G.711 + telephone-event, against real peers' offers."""
import pathlib
from dataclasses import replace

import pytest

from ivr.sdp import (
    Connection, Direction, NegotiatedMedia, NoCommonCodec, OfferAnswerError, RtpMap, SdpError,
    bump_version, hold_offer, make_answer, make_offer, make_reanswer, negotiate_answer, parse_sdp,
    serialize_sdp,
)

DATA = pathlib.Path(__file__).parent / "data"
TORTURE = pathlib.Path(__file__).resolve().parents[1] / "data" / "sip-torture"


def fixture(name):
    return parse_sdp((DATA / name).read_bytes())


def answer(offer, **kw):
    kw.setdefault("session_id", 555)
    kw.setdefault("version", 1)
    sd, neg = make_answer(offer, "192.0.2.50", 40000, **kw)
    assert parse_sdp(serialize_sdp(sd)) == sd  # every answer we produce is valid SDP
    return sd, neg


# ---------------------------------------------------------------- make_offer

def test_make_offer_exact_wire():
    sd = make_offer("192.0.2.50", 40000, session_id=123, version=456)
    assert serialize_sdp(sd) == (
        b"v=0\r\no=ivr 123 456 IN IP4 192.0.2.50\r\ns=ivr\r\nc=IN IP4 192.0.2.50\r\nt=0 0\r\n"
        b"m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
        b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n")


def test_make_offer_options_and_ipv6():
    sd = make_offer("2001:db8::5", 5004, codecs=("pcma",), telephone_event_pt=None,
                    session_id=1, version=2, ptime=30)
    assert sd.origin.addrtype == "IP6" and sd.connection == Connection("IN", "IP6", "2001:db8::5")
    m = sd.media[0]
    assert m.formats == ("8",) and m.ptime == 30 and m.codecs == {8: RtpMap("PCMA", 8000)}


@pytest.mark.parametrize("kwargs", [{"codecs": ("G729",)}, {"codecs": ()}, {"telephone_event_pt": 8}])
def test_make_offer_misuse_is_plain_value_error(kwargs):
    with pytest.raises(ValueError) as info:
        make_offer("10.0.0.1", 4000, session_id=1, version=1, **kwargs)
    assert not isinstance(info.value, SdpError)


# ---------------------------------------------------------------- make_answer against real offers

def test_answer_sipp_uac():
    sd, neg = answer(fixture("sipp-uac.sdp"))
    assert neg == NegotiatedMedia("127.0.0.1", 6000, "PCMU", 0, None, 20, Direction.SENDRECV, False, 0)
    assert sd.media[0].formats == ("0",)  # no telephone-event: SIPp did not offer it
    assert sd.media[0].direction(sd) is Direction.SENDRECV
    assert sd.origin.sess_id == "555" and sd.connection.address == "192.0.2.50"


def test_answer_baresip_ipv6_rejects_video_and_keeps_te_pt():
    offer = fixture("baresip-0.5-ipv6-offer.sdp")
    sd, neg = answer(offer)
    assert (neg.remote_ip, neg.remote_port, neg.codec, neg.payload_type) == ("fde1:c0fe::7", 17882, "PCMU", 0)
    assert neg.telephone_event_pt == 102
    audio, video = sd.media
    assert audio.port == 40000 and audio.formats == ("0", "102")
    assert audio.rtpmap[102] == RtpMap("telephone-event", 8000) and audio.fmtp[102] == "0-16"
    assert (video.media, video.port, video.proto, video.formats) == ("video", 0, "RTP/AVP", ("96",))
    assert not video.attributes


def test_answer_respects_offerer_order_and_our_supported_list():
    offer = fixture("asterisk-multicodec-offer.sdp")  # 107 opus, 9 G722, 8 PCMA, 0 PCMU
    _, neg = answer(offer)
    assert (neg.codec, neg.payload_type) == ("PCMA", 8)
    _, neg = answer(offer, supported=("PCMU",))
    assert (neg.codec, neg.payload_type) == ("PCMU", 0)


def test_telephone_event_48k_for_opus_ignored():
    _, neg = answer(fixture("asterisk-multicodec-offer.sdp"))
    assert neg.telephone_event_pt == 101  # not 100 (telephone-event/48000)
    sd, neg = answer(fixture("linphone4-offer.sdp"))  # te/48000 at 101, te/16000 at 99, te/8000 at 100
    assert neg.telephone_event_pt == 100
    assert sd.media[0].formats == ("0", "100")
    assert (neg.codec, neg.payload_type) == ("PCMU", 0)  # static pt without rtpmap understood


def test_telephone_event_can_be_declined():
    sd, neg = answer(fixture("asterisk-multicodec-offer.sdp"), telephone_event=False)
    assert neg.telephone_event_pt is None and sd.media[0].formats == ("8",)


def test_linphone_classic_offer_static_pcmu():
    sd, neg = answer(fixture("linphone-offer.sdp"))
    assert (neg.codec, neg.payload_type, neg.telephone_event_pt) == ("PCMU", 0, 101)
    assert [m.port for m in sd.media] == [40000, 0]


def test_dynamic_payload_type_for_g711_is_kept():
    offer = parse_sdp("v=0\r\no=- 1 1 IN IP4 10.9.9.9\r\ns=-\r\nc=IN IP4 10.9.9.9\r\nt=0 0\r\n"
                      "m=audio 7000 RTP/AVP 97 96\r\na=rtpmap:97 pcma/8000\r\na=rtpmap:96 telephone-event/8000\r\n")
    sd, neg = answer(offer)
    assert (neg.codec, neg.payload_type, neg.telephone_event_pt) == ("PCMA", 97, 96)
    assert sd.media[0].rtpmap[97] == RtpMap("PCMA", 8000)


def test_answer_copies_timing_and_offered_ptime():
    offer = parse_sdp("v=0\r\no=- 1 1 IN IP4 10.9.9.9\r\ns=-\r\nc=IN IP4 10.9.9.9\r\nt=3338481189 0\r\n"
                      "m=audio 7000 RTP/AVP 8\r\na=ptime:30\r\n")
    sd, neg = answer(offer)
    assert sd.timing == offer.timing
    assert neg.ptime == 30  # SIPp's g711a.pcap peer sends 30 ms frames
    assert sd.media[0].ptime == 20


# baresip-1.0-srtp-offer.sdp (RTP/SAVP) is in test_srtp_offer_answer.py since #15: it is now
# refused by the media_encryption policy, or answered, not a codec mismatch.
@pytest.mark.parametrize("name", ["g729-only.sdp", "asterisk-g722-only.sdp"])
def test_no_common_codec(name):
    with pytest.raises(NoCommonCodec) as info:
        answer(fixture(name))
    assert isinstance(info.value, OfferAnswerError) and isinstance(info.value, SdpError)


def test_only_video_offered_is_no_common_codec():
    offer = parse_sdp((TORTURE / "rfc5118/wire/ipv6-in-sdp.dat").read_bytes().split(b"\r\n\r\n", 1)[1])
    with pytest.raises(NoCommonCodec):  # G726-32 audio + H263 video
        answer(offer)


def test_rejected_audio_offer_then_usable_one():
    offer = parse_sdp("v=0\r\no=- 1 1 IN IP4 10.9.9.9\r\ns=-\r\nc=IN IP4 10.9.9.9\r\nt=0 0\r\n"
                      "m=audio 0 RTP/AVP 0\r\nm=audio 6000 RTP/AVP 18\r\nm=audio 6002 RTP/AVP 8\r\n"
                      "m=audio 6004 RTP/AVP 0\r\nm=application 9 UDP/BFCP *\r\n")
    sd, neg = answer(offer)
    assert [m.port for m in sd.media] == [0, 0, 40000, 0, 0]
    assert [m.media for m in sd.media] == ["audio"] * 4 + ["application"]
    assert sd.media[4].proto == "UDP/BFCP" and sd.media[4].formats == ("*",)
    assert (neg.remote_port, neg.codec, neg.media_index) == (6002, "PCMA", 2)


def test_mult_ip_media_level_connection_used():
    offer = parse_sdp((TORTURE / "rfc5118/wire/mult-ip-in-sdp.dat").read_bytes().split(b"\r\n\r\n", 1)[1])
    sd, neg = answer(offer)
    assert (neg.remote_ip, neg.remote_port) == ("192.0.2.1", 22334)
    assert [m.port for m in sd.media] == [40000, 0]


def test_no_connection_anywhere_is_an_offer_error():
    offer = parse_sdp("v=0\r\no=- 1 1 IN IP4 10.9.9.9\r\ns=-\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n")
    with pytest.raises(OfferAnswerError):
        answer(offer)


# ---------------------------------------------------------------- direction and hold

def offer_with(direction_line="", conn="10.9.9.9"):
    return parse_sdp(f"v=0\r\no=- 1 1 IN IP4 {conn}\r\ns=-\r\nc=IN IP4 {conn}\r\nt=0 0\r\n"
                     f"m=audio 7000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n{direction_line}")


@pytest.mark.parametrize("line, answered, hold", [
    ("", Direction.SENDRECV, False),
    ("a=sendrecv\r\n", Direction.SENDRECV, False),
    ("a=sendonly\r\n", Direction.RECVONLY, True),
    ("a=recvonly\r\n", Direction.SENDONLY, False),
    ("a=inactive\r\n", Direction.INACTIVE, True),
])
def test_answer_mirrors_direction(line, answered, hold):
    sd, neg = answer(offer_with(line))
    assert sd.media[0].direction(sd) is answered
    assert neg.direction is answered and neg.on_hold is hold


def test_session_level_sendonly_offer():
    offer = parse_sdp("v=0\r\no=- 1 1 IN IP4 10.9.9.9\r\ns=-\r\nc=IN IP4 10.9.9.9\r\nt=0 0\r\na=sendonly\r\n"
                      "m=audio 7000 RTP/AVP 0\r\n")
    sd, neg = answer(offer)
    assert sd.media[0].direction(sd) is Direction.RECVONLY and neg.on_hold


def test_legacy_hold_with_null_address():
    sd, neg = answer(offer_with(conn="0.0.0.0"))
    assert neg.on_hold and neg.remote_ip == "0.0.0.0"
    assert sd.media[0].direction(sd) is Direction.SENDRECV


def test_local_direction_limits_answer():
    sd, neg = answer(offer_with(), direction=Direction.SENDONLY)
    assert neg.direction is Direction.SENDONLY and sd.media[0].direction(sd) is Direction.SENDONLY
    sd, neg = answer(offer_with("a=sendonly\r\n"), direction=Direction.SENDONLY)
    assert neg.direction is Direction.INACTIVE


def test_reinvite_hold_unhold_reanswers():
    initial, _ = answer(offer_with())
    held, neg = make_reanswer(offer_with("a=sendonly\r\n"), initial, "192.0.2.50", 40000)
    assert held.media[0].direction(held) is Direction.RECVONLY and neg.on_hold
    assert held.origin.sess_id == initial.origin.sess_id
    assert held.origin.sess_version == initial.origin.sess_version + 1
    same, _ = make_reanswer(offer_with("a=sendonly\r\n"), held, "192.0.2.50", 40000)
    assert same == held  # nothing changed: same o= version (RFC 3264 8)
    back, neg = make_reanswer(offer_with("a=sendrecv\r\n"), held, "192.0.2.50", 40000)
    assert back.media[0].direction(back) is Direction.SENDRECV and not neg.on_hold
    assert back.origin.sess_version == held.origin.sess_version + 1


# ---------------------------------------------------------------- we are the offerer

def our_offer(**kw):
    return make_offer("192.0.2.50", 40000, session_id=9, version=9, **kw)


def test_negotiate_answer_from_asterisk():
    neg = negotiate_answer(our_offer(), fixture("asterisk-answer-pcmu.sdp"))
    assert neg == NegotiatedMedia("192.168.11.48", 15300, "PCMU", 0, None, 20, Direction.SENDRECV, False, 0)


def test_negotiate_answer_with_our_own_answerer():
    offer = our_offer(codecs=("PCMA", "PCMU"))
    their, _ = make_answer(offer, "198.51.100.2", 6000, supported=("PCMU", "PCMA"), session_id=1, version=1)
    neg = negotiate_answer(offer, their)
    assert (neg.remote_ip, neg.remote_port, neg.codec, neg.payload_type, neg.telephone_event_pt) == \
        ("198.51.100.2", 6000, "PCMA", 8, 101)


def test_negotiate_answer_te_only_if_we_offered():
    offer = our_offer(telephone_event_pt=None)
    their = parse_sdp("v=0\r\no=- 1 1 IN IP4 10.9.9.9\r\ns=-\r\nc=IN IP4 10.9.9.9\r\nt=0 0\r\n"
                      "m=audio 7000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:30\r\n")
    neg = negotiate_answer(offer, their)
    assert neg.telephone_event_pt is None and neg.ptime == 30


@pytest.mark.parametrize("line, ours, hold", [
    ("a=recvonly\r\n", Direction.SENDONLY, False),
    ("a=sendonly\r\n", Direction.RECVONLY, True),
    ("a=inactive\r\n", Direction.INACTIVE, True),
])
def test_negotiate_answer_direction(line, ours, hold):
    neg = negotiate_answer(our_offer(), offer_with(line))
    assert neg.direction is ours and neg.on_hold is hold


def test_negotiate_answer_failures():
    rejected = offer_with().media[0]
    base = offer_with()
    with pytest.raises(NoCommonCodec):
        negotiate_answer(our_offer(), replace(base, media=(replace(rejected, port=0),)))
    with pytest.raises(NoCommonCodec):  # they answered with a codec we never offered
        negotiate_answer(our_offer(codecs=("PCMA",)), base)
    with pytest.raises(OfferAnswerError):  # m= line count mismatch
        negotiate_answer(our_offer(), replace(base, media=base.media * 2))


def test_our_hold_reoffer_and_bump_version():
    offer = our_offer()
    assert bump_version(offer).origin.sess_version == 10
    held = hold_offer(offer)
    assert held.media[0].direction(held) is Direction.SENDONLY and held.origin.sess_version == 10
    inactive = hold_offer(held, inactive=True)
    assert inactive.media[0].direction(inactive) is Direction.INACTIVE and inactive.origin.sess_version == 11
    resumed = hold_offer(inactive, hold=False)
    assert resumed.media[0].direction(resumed) is Direction.SENDRECV and resumed.origin.sess_version == 12
    assert serialize_sdp(resumed).count(b"a=sendrecv") == 1
    # the peer answers our sendonly re-offer with recvonly: we send, they are not holding us
    their, neg = make_answer(held, "198.51.100.2", 6000, session_id=1, version=2)
    assert their.media[0].direction(their) is Direction.RECVONLY and neg.on_hold
    neg = negotiate_answer(held, their)
    assert neg.direction is Direction.SENDONLY and not neg.on_hold


def test_g711_needs_8khz_mono():
    for rtpmap in ("96 PCMU/16000", "96 PCMA/8000/2"):
        offer = parse_sdp("v=0\r\no=- 1 1 IN IP4 10.9.9.9\r\ns=-\r\nc=IN IP4 10.9.9.9\r\nt=0 0\r\n"
                          f"m=audio 7000 RTP/AVP 96\r\na=rtpmap:{rtpmap}\r\n")
        with pytest.raises(NoCommonCodec):
            answer(offer)
