"""The WebRTC answer (ivr/sdp/webrtc.py) to a captured-style Chrome 120 offer and to the
offers it must refuse."""
from __future__ import annotations

from pathlib import Path

import pytest

from ivr.sdp.offer_answer import NoCommonCodec, OfferAnswerError
from ivr.sdp.session import parse_sdp, serialize_sdp
from ivr.sdp.webrtc import is_webrtc_offer, make_webrtc_answer

DATA = Path(__file__).parent / "data"
CHROME = (DATA / "chrome-120-webrtc-offer.sdp").read_bytes()
FP = "sha-256 " + ":".join(["0A"] * 32)


def answer(offer_bytes=CHROME, **kwargs):
    offer = parse_sdp(offer_bytes)
    return make_webrtc_answer(offer, "127.0.0.1", 40000, session_id=7, version=1,
                              ice_ufrag="abcd", ice_pwd="0123456789abcdefghijkl",
                              fingerprint=FP, **kwargs)


def test_chrome_offer_is_webrtc_and_the_plain_ones_are_not():
    assert is_webrtc_offer(parse_sdp(CHROME))
    assert not is_webrtc_offer(parse_sdp((DATA / "linphone-offer.sdp").read_bytes()))


def test_chrome_offer_answered_with_g711_ice_lite_dtls_and_bundle():
    sd, media = answer()
    text = serialize_sdp(sd).decode()
    assert parse_sdp(serialize_sdp(sd)) == sd  # our answer parses back to itself
    m = sd.media[0]
    assert (m.port, m.proto, m.formats) == (40000, "UDP/TLS/RTP/SAVPF", ("0", "126"))
    assert "a=ice-lite\r\n" in text and "a=group:BUNDLE 0\r\n" in text
    for line in ("a=mid:0", "a=rtcp-mux", "a=ice-ufrag:abcd", "a=ice-pwd:0123456789abcdefghijkl",
                 f"a=fingerprint:{FP}", "a=setup:passive", "a=end-of-candidates",
                 "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host",
                 "a=rtpmap:0 PCMU/8000", "a=rtpmap:126 telephone-event/8000", "a=sendrecv"):
        assert line + "\r\n" in text, line
    for foreign in ("opus", "ssrc", "msid", "extmap", "rtcp-fb", "ice-options", "a=rtcp:"):
        assert foreign not in text, foreign
    n = media.negotiated
    assert (n.codec, n.payload_type, n.telephone_event_pt, n.rtcp_mux, n.on_hold) == \
        ("PCMU", 0, 126, True, False)
    assert n.srtp is None  # keys come from the DTLS handshake, not the SDP
    assert (media.remote_ufrag, media.remote_pwd) == ("kXqT", "dY7hQ3Jk0R8b2vW1nM5pZ9cL")
    assert media.remote_fingerprint == (
        "sha-256", "4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:3F:1F:E4:9D:"
                   "34:81:8E:32:2F:7D:5C:46")
    assert media.setup == "passive" and media.mid == "0"


def _edit(old: str, new: str) -> bytes:
    assert old.encode() in CHROME
    return CHROME.replace(old.encode(), new.encode())


def test_pcma_only_is_chosen_when_pcmu_is_not_offered():
    sd, media = answer(_edit("111 63 9 0 8 13 110 126", "111 8 126"))
    assert media.negotiated.codec == "PCMA" and sd.media[0].formats == ("8", "126")


@pytest.mark.parametrize("theirs,ours", [("actpass", "passive"), ("active", "passive"),
                                         ("passive", "active")])
def test_setup_roles(theirs, ours):
    sd, media = answer(_edit("a=setup:actpass", f"a=setup:{theirs}"))
    assert media.setup == ours and f"a=setup:{ours}\r\n" in serialize_sdp(sd).decode()


def test_session_level_ice_and_fingerprint_are_used():
    moved = _edit("a=ice-ufrag:kXqT\r\na=ice-pwd:dY7hQ3Jk0R8b2vW1nM5pZ9cL\r\n", "")
    moved = moved.replace(b"a=extmap-allow-mixed\r\n",
                          b"a=extmap-allow-mixed\r\na=ice-ufrag:sess\r\na=ice-pwd:sessionpassword1234567\r\n")
    _, media = answer(moved)
    assert (media.remote_ufrag, media.remote_pwd) == ("sess", "sessionpassword1234567")


def test_a_video_line_is_rejected_and_left_out_of_bundle():
    video = (b"m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\n"
             b"a=rtpmap:96 VP8/90000\r\n")
    offer = _edit("a=group:BUNDLE 0", "a=group:BUNDLE 0 1") + video
    sd, _ = answer(offer)
    assert sd.media[1].port == 0 and sd.attribute("group") == "BUNDLE 0"


@pytest.mark.parametrize("old,new,kind", [
    ("a=ice-pwd:dY7hQ3Jk0R8b2vW1nM5pZ9cL\r\n", "", OfferAnswerError),
    ("a=fingerprint:sha-256 4A:AD", "a=fingerprint:md5 4A:AD", OfferAnswerError),
    ("a=fingerprint:sha-256 4A:AD", "a=fingerprint:sha-256 ZZ:AD", OfferAnswerError),
    ("a=setup:actpass", "a=setup:holdconn", OfferAnswerError),
    ("111 63 9 0 8 13 110 126", "111 9", NoCommonCodec),
])
def test_offers_we_refuse_with_488(old, new, kind):
    with pytest.raises(kind) as caught:
        answer(_edit(old, new))
    assert caught.value.status == 488
