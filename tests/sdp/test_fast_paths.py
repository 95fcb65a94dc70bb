"""parse_sdp's line splitting and media sections, and make_answer's codec walk, give the
answers of the straightforward code they replaced."""
from __future__ import annotations

import random

import pytest

from ivr.sdp.offer_answer import _pick_codec, _telephone_event_pt, make_answer
from ivr.sdp.session import Connection, Direction, SdpError, parse_sdp

HEAD = "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n"


def _lines_reference(text: str):
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]
    if any("\r" in ln for ln in lines):
        return None
    return [ln for ln in lines if ln.strip()]


def test_line_ends_are_split_as_before():
    rng = random.Random(8866)
    for _ in range(3000):
        soup = "".join(rng.choice(["a=x", "a=y:1", " ", ""]) + rng.choice(["\r", "\n", "\r\n"])
                       for _ in range(rng.randrange(8)))
        if rng.random() < 0.5:
            soup += rng.choice(["a=z", "a=z\r", "a=z\r\r", " \r"])  # no line end at the end
        text = HEAD + "m=audio 4000 RTP/AVP 0\n" + soup
        expected = _lines_reference(text)
        if expected is None:
            with pytest.raises(SdpError, match="bare CR"):
                parse_sdp(text)
            continue
        attributes = [ln[2:] for ln in expected[6:]]
        got = parse_sdp(text).media[0].attributes
        assert [f"{n}:{v}" if v is not None else n for n, v in got] == attributes, repr(soup)


def test_media_section_lines_first_one_wins_and_a_bad_later_c_still_fails():
    sd = parse_sdp(HEAD + "m=audio 4000/2 RTP/AVP 0 8\ni=first\ni=second\nc=IN IP4 198.51.100.1\n"
                   "c=IN IP4 198.51.100.2\nb=AS:64\nk=prompt\nk=clear:x\na=sendonly\n"
                   "m=video 0 RTP/AVP\na=inactive\n")
    audio, video = sd.media
    assert (audio.port, audio.port_count, audio.formats) == (4000, 2, ("0", "8"))
    assert (audio.information, audio.key) == ("first", "prompt")
    assert audio.connection == Connection("IN", "IP4", "198.51.100.1")
    assert [(b.bwtype, b.bandwidth) for b in audio.bandwidths] == [("AS", 64)]
    assert audio.attributes == (("sendonly", None),)
    assert (video.port, video.formats, video.connection, video.attributes) == (
        0, (), None, (("inactive", None),))
    with pytest.raises(SdpError):
        parse_sdp(HEAD + "m=audio 4000 RTP/AVP 0\nc=IN IP4 198.51.100.1\nc=IN IP4\n")
    with pytest.raises(SdpError):
        parse_sdp(HEAD + "m=audio 4000 RTP/AVP 0\no=- 1 1 IN IP4 192.0.2.1\n")


def _pick_reference(m, allowed):
    codecs = m.codecs
    for pt in m.payload_types:
        c = codecs.get(pt)
        if c is not None and c.encoding.upper() in allowed and c.clock == 8000 and c.channels == 1:
            return c.encoding.upper(), pt
    return None


def _te_reference(m):
    codecs = m.codecs
    for pt in m.payload_types:
        c = codecs.get(pt)
        if c is not None and c.encoding.lower() == "telephone-event" and c.clock == 8000:
            return pt
    return None


@pytest.mark.parametrize("formats, rtpmaps", [
    ("0 8 101", []),
    ("8 0", []),
    ("96 0 8", ["96 PCMA/8000"]),
    ("96 97 0", ["96 PCMU/16000", "97 pcma/8000/2"]),
    ("3 18 101 100", ["100 telephone-event/8000", "101 telephone-event/16000"]),
    ("101 101 8 8", ["101 telephone-event/8000"]),
    ("98 99 0", ["99 telephone-event/8000", "98 telephone-event/8000", "98 PCMU/8000"]),
    ("200 abc 0", []),
])
def test_codec_walk_matches_the_payload_type_order(formats, rtpmaps):
    text = HEAD + f"m=audio 4000 RTP/AVP {formats}\n" + "".join(f"a=rtpmap:{r}\n" for r in rtpmaps)
    m = parse_sdp(text).media[0]
    for allowed in (("PCMU", "PCMA"), ("PCMA",), ("PCMU",)):
        assert _pick_codec(m, allowed) == _pick_reference(m, allowed)
        assert _pick_codec(m, allowed, m.codecs) == _pick_reference(m, allowed)
    assert _telephone_event_pt(m) == _te_reference(m) == _telephone_event_pt(m, m.codecs)


@pytest.mark.parametrize("extra, hold, direction", [
    ("", False, Direction.SENDRECV),
    ("a=sendonly\n", True, Direction.RECVONLY),
    ("a=inactive\n", True, Direction.INACTIVE),
    ("a=recvonly\n", False, Direction.SENDONLY),
    ("c=IN IP4 0.0.0.0\n", True, Direction.SENDRECV),
])
def test_answer_hold_flag_is_the_streams_is_hold(extra, hold, direction):
    offer = parse_sdp(HEAD + "m=audio 4000 RTP/AVP 0 101\na=rtpmap:101 telephone-event/8000\n" + extra)
    _, negotiated = make_answer(offer, "192.0.2.9", 30000, session_id=1, version=1)
    assert negotiated.on_hold is offer.media[0].is_hold(offer) is hold
    assert negotiated.direction is direction
    assert negotiated.telephone_event_pt == 101
