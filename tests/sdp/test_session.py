"""RFC 8866 parsing and serialising, against real fixtures and the RFC 4475/5118 torture bodies."""
import pathlib

import pytest
from hypothesis import given, settings, strategies as st

from ivr.sdp import (
    Bandwidth, Connection, Direction, MediaDescription, Origin, RtpMap, SdpError,
    SessionDescription, Timing, parse_sdp, serialize_sdp,
)

DATA = pathlib.Path(__file__).parent / "data"
TORTURE = pathlib.Path(__file__).resolve().parents[1] / "data" / "sip-torture"
FIXTURES = sorted(DATA.glob("*.sdp"))


def sip_body(path: pathlib.Path) -> bytes:
    raw = path.read_bytes()
    return raw[raw.index(b"\r\n\r\n") + 4:]


def roundtrip_ok(raw) -> SessionDescription:
    sd = parse_sdp(raw)
    wire = serialize_sdp(sd)
    assert parse_sdp(wire) == sd
    assert serialize_sdp(parse_sdp(wire)) == wire  # canonical form is a fixed point
    return sd


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fixture_roundtrip(path):
    raw = path.read_bytes()
    sd = roundtrip_ok(raw)
    assert sd.media  # every fixture has at least one m= line
    # these fixtures are already in canonical order, so re-serialising reproduces the bytes
    assert serialize_sdp(sd) == raw


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fixture_lf_only_and_byte_by_byte_prefixes(path):
    raw = path.read_bytes()
    assert parse_sdp(raw.replace(b"\r\n", b"\n")) == parse_sdp(raw)
    assert parse_sdp(raw.decode()) == parse_sdp(raw)
    # every truncation either parses or raises SdpError; nothing else escapes
    for i in range(len(raw)):
        try:
            parse_sdp(raw[:i])
        except SdpError:
            pass


def test_sipp_default_sdp():
    sd = parse_sdp((DATA / "sipp-uac.sdp").read_bytes())
    assert sd.origin == Origin("user1", "53655765", 2353687637, "IN", "IP4", "127.0.0.1")
    assert sd.session_name == "-"
    assert sd.connection == Connection("IN", "IP4", "127.0.0.1")
    assert sd.timing == (Timing(0, 0),)
    (m,) = sd.media
    assert (m.media, m.port, m.proto, m.formats) == ("audio", 6000, "RTP/AVP", ("0",))
    assert m.rtpmap == {0: RtpMap("PCMU", 8000, 1)}
    assert m.rtpmap[0] == ("PCMU", 8000, 1)  # plain tuple access works too
    assert m.direction(sd) is Direction.SENDRECV
    assert m.ptime is None
    assert m.remote_address(sd) == "127.0.0.1"


def test_baresip_ipv6_offer_details():
    sd = parse_sdp((DATA / "baresip-0.5-ipv6-offer.sdp").read_bytes())
    assert sd.origin.addrtype == "IP6" and sd.origin.address == "fde1:c0fe::7"
    assert sd.attributes == (("tool", "baresip 0.5.0"),)
    audio, video = sd.media
    assert audio.bandwidths == (Bandwidth("AS", 128),)
    assert audio.rtpmap[96] == RtpMap("speex", 32000, 2)
    assert audio.rtpmap[102] == RtpMap("telephone-event", 8000, 1)
    assert audio.fmtp[102] == "0-15"
    assert audio.fmtp[96] == 'mode="6";vbr=off;cng=on'
    assert audio.ptime == 20
    assert audio.has_attribute("rtcp-mux") and audio.attribute("rtcp-mux") is None
    assert audio.attribute("ssrc") == "1979608979 cname:sip:202@[fde1:c0fe::7]"
    assert video.media == "video" and video.port == 9010
    assert video.attribute("rtcp-fb") == "* nack pli"
    assert audio.remote_address(sd) == "fde1:c0fe::7"


def test_static_payload_types_without_rtpmap():
    sd = parse_sdp((DATA / "linphone-offer.sdp").read_bytes())
    audio = sd.media[0]
    assert 0 not in audio.rtpmap and 3 not in audio.rtpmap
    assert audio.codecs[0] == RtpMap("PCMU", 8000)
    assert audio.codecs[8] == RtpMap("PCMA", 8000)
    assert audio.codecs[3] == RtpMap("GSM", 8000)
    assert list(audio.codecs) == [111, 110, 3, 0, 8, 101]


# ---------------------------------------------------------------- RFC 5118 IPv6 torture bodies

def test_rfc5118_ipv6_in_sdp():
    sd = roundtrip_ok(sip_body(TORTURE / "rfc5118/wire/ipv6-in-sdp.dat"))
    assert sd.origin == Origin("assistant", "971731711378798081", 0, "IN", "IP6", "2001:db8::20")
    assert sd.connection == Connection("IN", "IP6", "2001:db8::20")
    assert sd.timing == (Timing(3338481189, 3370017201),)
    assert sd.session_name == "Live video feed for today's meeting"
    audio, video = sd.media
    assert audio.rtpmap == {2: RtpMap("G726-32", 8000)}
    assert audio.remote_address(sd) == "2001:db8::20" and audio.port == 6000
    assert video.remote_address(sd) == "2001:db8::20" and video.port == 6024


def test_rfc5118_mult_ip_in_sdp_media_level_connections():
    sd = roundtrip_ok(sip_body(TORTURE / "rfc5118/wire/mult-ip-in-sdp.dat"))
    assert sd.session_name == ""  # empty s= is tolerated
    assert sd.connection is None
    audio, video = sd.media
    assert audio.connection == Connection("IN", "IP4", "192.0.2.1")
    assert video.connection == Connection("IN", "IP6", "2001:db8::1")
    assert audio.remote_address(sd) == "192.0.2.1"
    assert video.remote_address(sd) == "2001:db8::1"


def test_rfc5118_ipv4_mapped_ipv6():
    sd = roundtrip_ok(sip_body(TORTURE / "rfc5118/wire/ipv4-mapped-ipv6.dat"))
    assert sd.connection == Connection("IN", "IP6", "::ffff:192.0.2.2")
    assert sd.media[0].remote_address(sd) == "::ffff:192.0.2.2"


def test_rfc5118_archive_form_bare_lf():
    wire = sip_body(TORTURE / "rfc5118/wire/ipv6-in-sdp.dat")
    raw = (TORTURE / "rfc5118/ipv6-in-sdp.dat").read_bytes()
    assert parse_sdp(raw[raw.index(b"\n\n") + 2:]) == parse_sdp(wire)


@pytest.mark.parametrize("path", sorted((TORTURE / "rfc4475").glob("*.dat")), ids=lambda p: p.name)
def test_rfc4475_bodies_parse_or_sdp_error(path):
    raw = path.read_bytes()
    if b"\r\n\r\n" not in raw or b"v=0" not in raw:
        return
    body = sip_body(path)
    try:
        sd = roundtrip_ok(body)
    except SdpError:
        assert path.name in {"mismatch02.dat", "dblreq.dat"}, path.name  # no s=; "m =video"
        return
    # "a=rtpmap:31 LPC" lacks a clock rate: skipped by rtpmap; 31 is H261 in the RFC 3551 table
    for m in sd.media:
        assert 31 not in m.rtpmap
    if len(sd.media) > 1:
        assert sd.media[1].codecs == {31: RtpMap("H261", 90000)}


# ---------------------------------------------------------------- direction, hold, rejection

BASE = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n"


def audio(extra="", session_extra="", conn=None, port=4000):
    head = BASE if conn is None else BASE.replace("192.0.2.9\r\nt", f"{conn}\r\nt")
    return parse_sdp(head + session_extra + f"m=audio {port} RTP/AVP 0\r\n" + extra)


@pytest.mark.parametrize("attr, expected, hold", [
    ("", Direction.SENDRECV, False),
    ("a=sendrecv\r\n", Direction.SENDRECV, False),
    ("a=sendonly\r\n", Direction.SENDONLY, True),
    ("a=recvonly\r\n", Direction.RECVONLY, False),
    ("a=inactive\r\n", Direction.INACTIVE, True),
])
def test_media_direction_and_hold(attr, expected, hold):
    sd = audio(attr)
    assert sd.media[0].direction(sd) is expected
    assert sd.media[0].is_hold(sd) is hold


def test_session_level_direction_fallback_and_media_override():
    sd = audio(session_extra="a=sendonly\r\n")
    assert sd.direction is Direction.SENDONLY
    assert sd.media[0].direction(sd) is Direction.SENDONLY
    assert sd.media[0].direction() is Direction.SENDRECV  # no session given: media-only view
    sd = audio("a=recvonly\r\n", session_extra="a=inactive\r\n")
    assert sd.media[0].direction(sd) is Direction.RECVONLY


def test_legacy_hold_null_connection():
    sd = audio(conn="0.0.0.0")
    assert sd.media[0].is_hold(sd)
    assert sd.media[0].direction(sd) is Direction.SENDRECV
    sd6 = parse_sdp(BASE.replace("IP4 192.0.2.9\r\nt", "IP6 ::\r\nt") + "m=audio 4000 RTP/AVP 0\r\n")
    assert sd6.media[0].is_hold(sd6)


def test_media_level_connection_overrides_session():
    sd = audio("c=IN IP4 203.0.113.5\r\n")
    assert sd.media[0].remote_address(sd) == "203.0.113.5"
    sd = audio("c=IN IP4 0.0.0.0\r\n")
    assert sd.media[0].is_hold(sd)


def test_rejected_stream_port_zero():
    sd = audio(port=0)
    assert sd.media[0].rejected and sd.media[0].port == 0
    assert not audio().media[0].rejected
    sd = parse_sdp(BASE + "m=video 0 RTP/AVP\r\n")  # no format on a rejected line: tolerated
    assert sd.media[0].rejected and sd.media[0].formats == ()


def test_direction_algebra():
    assert Direction.SENDONLY.reverse() is Direction.RECVONLY
    assert Direction.INACTIVE.reverse() is Direction.INACTIVE
    assert Direction.SENDRECV.intersect(Direction.RECVONLY) is Direction.RECVONLY
    assert Direction.SENDONLY.intersect(Direction.RECVONLY) is Direction.INACTIVE


def test_ptime_variants():
    assert audio("a=ptime:30\r\n").media[0].ptime == 30
    assert audio("a=ptime:20.0\r\n").media[0].ptime == 20
    assert audio("a=ptime:banana\r\n").media[0].ptime is None
    assert audio("a=ptime:0\r\n").media[0].ptime is None


def test_port_count_and_multicast_connection():
    sd = roundtrip_ok(BASE.replace("192.0.2.9\r\nt", "224.2.1.1/127/3\r\nt") + "m=audio 49170/2 RTP/AVP 0\r\n")
    m = sd.media[0]
    assert (m.port, m.port_count) == (49170, 2)
    assert m.remote_address(sd) == "224.2.1.1"


def test_full_rfc8866_example_and_canonical_reordering():
    text = ("v=0\no=jdoe 3724394400 3724394405 IN IP4 198.51.100.1\ns=Call to John Smith\n"
            "i=SDP Offer #1\nu=http://www.jdoe.example.com/home.html\ne=Jane Doe <jane@jdoe.example.com>\n"
            "p=+1 617 555-6011\nc=IN IP4 198.51.100.1\nt=0 0\nm=audio 49170 RTP/AVP 0\n"
            "m=audio 49180 RTP/AVP 0\nm=video 51372 RTP/AVP 99\nc=IN IP6 2001:db8::2\n"
            "a=rtpmap:99 h263-1998/90000\n")
    sd = roundtrip_ok(text)
    assert sd.information == "SDP Offer #1"
    assert sd.uri == "http://www.jdoe.example.com/home.html"
    assert sd.emails == ("Jane Doe <jane@jdoe.example.com>",)
    assert sd.phones == ("+1 617 555-6011",)
    assert serialize_sdp(sd) == text.replace("\n", "\r\n").encode()
    # session-level lines out of order (t= before c=, a= before b=) are accepted and reordered
    messy = "v=0\no=- 1 2 IN IP4 10.0.0.1\ns=x\nt=0 0\na=foo:bar\nb=AS:64\nc=IN IP4 10.0.0.1\nm=audio 1 RTP/AVP 0\n"
    out = serialize_sdp(parse_sdp(messy)).decode()
    assert out.index("c=") < out.index("b=") < out.index("t=") < out.index("a=foo") < out.index("m=")


def test_unknown_lines_and_attributes_tolerated():
    sd = parse_sdp(BASE + "x=whatever\r\ny=more stuff\r\na=weird-flag\r\nm=audio 4000 RTP/AVP 0\r\n"
                   "q=unknown media line\r\na=x-custom:1 2 3\r\n\r\n\r\n")
    assert sd.attributes == (("weird-flag", None),)
    assert sd.media[0].attributes == (("x-custom", "1 2 3"),)
    assert b"x=" not in serialize_sdp(sd) and b"q=" not in serialize_sdp(sd)


def test_repeat_times_zones_keys_information():
    sd = roundtrip_ok(BASE.replace("t=0 0\r\n", "t=3034423619 3042462419\r\nr=604800 3600 0 90000\r\n"
                                   "z=2882844526 -1h 2898848070 0\r\nk=prompt\r\n")
                      + "m=audio 4000 RTP/AVP 0\r\ni=main audio\r\nk=clear:abc\r\n")
    assert sd.timing == (Timing(3034423619, 3042462419, ("604800 3600 0 90000",)),)
    assert sd.time_zones == "2882844526 -1h 2898848070 0" and sd.key == "prompt"
    assert sd.media[0].information == "main audio" and sd.media[0].key == "clear:abc"


def test_missing_t_line_defaults_to_permanent():
    sd = parse_sdp("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nm=audio 1 RTP/AVP 0\n")
    assert sd.timing == (Timing(0, 0),)


def test_latin1_body_is_decoded():
    sd = parse_sdp(BASE.replace("s=-", "s=caf\xe9").encode("latin-1"))
    assert sd.session_name == "caf\xe9"


def test_serialize_refuses_line_breaks_in_fields():
    sd = parse_sdp(BASE)
    from dataclasses import replace
    with pytest.raises(ValueError):
        serialize_sdp(replace(sd, session_name="a\r\nm=audio 1 RTP/AVP 0"))


def test_model_builds_and_serialises_from_scratch():
    sd = SessionDescription(
        origin=Origin("ivr", "42", 7, "IN", "IP4", "10.1.1.1"), connection=Connection("IN", "IP4", "10.1.1.1"),
        media=(MediaDescription("audio", 5004, "RTP/AVP", ("8",), attributes=(("rtpmap", "8 PCMA/8000"),)),))
    assert serialize_sdp(sd) == (b"v=0\r\no=ivr 42 7 IN IP4 10.1.1.1\r\ns=-\r\nc=IN IP4 10.1.1.1\r\n"
                                 b"t=0 0\r\nm=audio 5004 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n")


# ---------------------------------------------------------------- malformed input

MALFORMED = {
    "empty": "",
    "only blank lines": "\r\n\r\n",
    "no v=": "o=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n",
    "v= not first": "o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\ns=-\r\n",
    "bad version": "v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n",
    "no o=": "v=0\r\ns=-\r\nt=0 0\r\n",
    "no s=": "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nt=0 0\r\n",
    "short o=": "v=0\r\no=- 1 1 IN IP4\r\ns=-\r\n",
    "non-numeric o= version": "v=0\r\no=- 1 x IN IP4 1.2.3.4\r\ns=-\r\n",
    "duplicate o=": "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n",
    "bad c=": BASE + "c=IN IP4\r\n",
    "bad media c=": BASE + "m=audio 1 RTP/AVP 0\r\nc=IN\r\n",
    "non-numeric port": BASE + "m=audio abc RTP/AVP 0\r\n",
    "negative port": BASE + "m=audio -5 RTP/AVP 0\r\n",
    "port too large": BASE + "m=audio 70000 RTP/AVP 0\r\n",
    "bad port count": BASE + "m=audio 4000/x RTP/AVP 0\r\n",
    "m= too short": BASE + "m=audio 4000\r\n",
    "m= without formats": BASE + "m=audio 4000 RTP/AVP\r\n",
    "m= empty": BASE + "m=\r\n",
    "unicode digits port": BASE + "m=audio \u0661\u0662 RTP/AVP 0\r\n",
    "bad t=": BASE.replace("t=0 0", "t=now later"),
    "t= one field": BASE.replace("t=0 0", "t=0"),
    "r= before t=": "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nr=1 2 3\r\n",
    "bad b=": BASE + "b=AS\r\n",
    "non-numeric b=": BASE + "b=AS:lots\r\n",
    "no equals": BASE + "garbage line\r\n",
    "space before =": BASE + "m =audio 4000 RTP/AVP 0\r\n",
    "s= in media": BASE + "m=audio 4000 RTP/AVP 0\r\ns=again\r\n",
    "NUL byte": BASE + "a=x\x00y\r\n",
    "bare CR in a line": BASE + "a=x\ry\r\n",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_raises_sdp_error(name):
    with pytest.raises(SdpError):
        parse_sdp(MALFORMED[name])
    assert issubclass(SdpError, ValueError)


def test_wrong_type_is_our_misuse_not_sdp_error():
    with pytest.raises(TypeError):
        parse_sdp(12345)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(data):
    try:
        sd = parse_sdp(data)
    except SdpError:
        return
    assert parse_sdp(serialize_sdp(sd)) == sd


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_after_valid_head_never_crashes(tail):
    try:
        sd = parse_sdp(BASE + tail)
    except SdpError:
        return
    assert parse_sdp(serialize_sdp(sd)) == sd


line = st.sampled_from(["v=0", "o=- 1 2 IN IP4 1.2.3.4", "s=-", "c=IN IP4 1.2.3.4", "t=0 0",
                        "m=audio 4000 RTP/AVP 0 8", "a=sendonly", "a=rtpmap:0 PCMU/8000", "b=AS:64",
                        "c=IN IP6 ::1", "m=video 0 RTP/AVP 31", "a=ptime:20", "i=x", "z=1 2", "r=1 2 3"])


@settings(max_examples=300, deadline=None)
@given(st.lists(line, max_size=12))
def test_shuffled_lines_roundtrip_or_sdp_error(lines):
    text = "\r\n".join(["v=0", "o=- 1 1 IN IP4 9.9.9.9", "s=-"] + lines) + "\r\n"
    try:
        sd = parse_sdp(text)
    except SdpError:
        return
    assert parse_sdp(serialize_sdp(sd)) == sd
