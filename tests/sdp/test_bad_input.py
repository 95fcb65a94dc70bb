"""Bad SDP from a peer is an SdpError that says what is wrong, never another exception,
and what the SDP layer hands on (NegotiatedMedia) is always usable: an IP address we can
send to, a port, a payload type.  ``status`` is the SIP answer to the offer (400 malformed,
488 not acceptable) and ``warn_code`` the RFC 3261 20.43 Warning code."""
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.sdp import (
    NoCommonCodec, OfferAnswerError, SdpError, make_answer, make_offer, negotiate_answer,
    parse_sdp,
)


def offer(connection: str = "c=IN IP4 192.0.2.7", media: str = "m=audio 6000 RTP/AVP 0",
          extra: str = "", origin: str = "o=- 1 1 IN IP4 192.0.2.7") -> bytes:
    return f"v=0\r\n{origin}\r\ns=-\r\n{connection}\r\nt=0 0\r\n{media}\r\n{extra}".encode()


def answer(sdp: bytes):
    return make_answer(parse_sdp(sdp), "192.0.2.50", 40000, session_id=1, version=1)


@pytest.mark.parametrize("connection, message", [
    ("c=IN IP4 10.10.10.256", "c= address 10.10.10.256 is not an IPv4 address"),
    ("c=IN IP4 1.2.3", "c= address 1.2.3 is not an IPv4 address"),
    ("c=IN IP4 010.1.1.1", "c= address 010.1.1.1 is not an IPv4 address"),
    ("c=IN IP4 2001:db8::1", "c= address 2001:db8::1 is not an IPv4 address"),
    ("c=IN IP4 10.0.0.1;x", "c= address 10.0.0.1;x is not an IPv4 address"),
    ("c=IN IP4 -host.example", "c= address -host.example is not an IPv4 address"),
    ("c=IN IP6 192.0.2.1", "c= address 192.0.2.1 is not an IPv6 address"),
    ("c=IN IP6 2001:db8:::1", "c= address 2001:db8:::1 is not an IPv6 address"),
    ("c=IN IP4 224.2.1.1/x", "c= address 224.2.1.1/x has a malformed /ttl/count suffix"),
    ("c=IN IP4 224.2.1.1/1/2/3", "c= address 224.2.1.1/1/2/3 has a malformed /ttl/count suffix"),
])
def test_a_malformed_address_is_a_400_sdp_error(connection, message):
    with pytest.raises(SdpError) as info:
        parse_sdp(offer(connection))
    assert str(info.value) == message
    assert (info.value.status, info.value.warn_code) == (400, 399)
    assert not isinstance(info.value, OfferAnswerError)


def test_a_malformed_media_level_address_is_an_error_too():
    with pytest.raises(SdpError, match="10.10.10.256 is not an IPv4"):
        parse_sdp(offer(extra="c=IN IP4 10.10.10.256\r\n"))


@pytest.mark.parametrize("connection", [
    "c=IN IP4 192.0.2.7", "c=IN IP4 224.2.1.1/127", "c=IN IP4 224.2.1.1/127/3",
    "c=IN IP6 2001:db8::1", "c=IN IP6 ff15::101/3", "c=IN IP4 media.example.com",
    "c=IN IP4 host-1.example.", "c=ATM NSAP 47.0091.8100.0000", "c=IN IP4 0.0.0.0",
])
def test_well_formed_addresses_parse(connection):
    parse_sdp(offer(connection))


@pytest.mark.parametrize("connection, message, code", [
    ("c=IN IP4 media.example.com",
     "c= address media.example.com is a host name, not an IP address", 301),
    ("c=IN IP4 224.2.1.1/127", "c= address 224.2.1.1 is not a unicast address", 399),
    ("c=IN IP6 ff15::101", "c= address ff15::101 is not a unicast address", 399),
    ("c=ATM NSAP 47.0091.8100.0000", "c= network type ATM is not IN", 300),
    ("c=IN IPX 1.2.3.4", "c= address type IPX is not IP4 or IP6", 301),
])
def test_an_address_we_cannot_send_to_is_a_488(connection, message, code):
    with pytest.raises(OfferAnswerError) as info:
        answer(offer(connection))
    assert str(info.value) == message
    assert (info.value.status, info.value.warn_code) == (488, code)


def test_the_same_checks_apply_to_an_answer():
    ours = make_offer("192.0.2.50", 40000, session_id=1, version=1)
    with pytest.raises(OfferAnswerError, match="host name"):
        negotiate_answer(ours, parse_sdp(offer("c=IN IP4 media.example.com")))
    with pytest.raises(SdpError, match="not an IPv4 address"):
        negotiate_answer(ours, parse_sdp(offer("c=IN IP4 10.10.10.256")))


def test_no_common_codec_is_488_with_warning_305():
    with pytest.raises(NoCommonCodec) as info:
        answer(offer(media="m=audio 6000 RTP/AVP 18"))
    assert (info.value.status, info.value.warn_code) == (488, 305)


@pytest.mark.parametrize("sdp", [
    offer(media="m=audio " + "9" * 5000 + " RTP/AVP 0"),
    offer(media="m=audio 6000/" + "9" * 5000 + " RTP/AVP 0"),
    offer(origin="o=- 1 " + "9" * 5000 + " IN IP4 192.0.2.7"),
    offer(extra="b=AS:" + "9" * 5000 + "\r\n"),
    offer().replace(b"t=0 0", b"t=" + b"9" * 5000 + b" 0"),
    offer(media="m=audio 70000 RTP/AVP 0"),
])
def test_huge_numbers_are_sdp_errors_not_value_errors(sdp):
    with pytest.raises(SdpError, match="out of range"):
        parse_sdp(sdp)


@pytest.mark.parametrize("media, extra", [
    ("m=audio 6000 RTP/AVP " + "9" * 5000, ""),
    ("m=audio 6000 RTP/AVP 96", "a=rtpmap:" + "9" * 5000 + " PCMU/8000\r\n"),
    ("m=audio 6000 RTP/AVP 96", "a=rtpmap:96 PCMU/" + "8" * 5000 + "\r\n"),
    ("m=audio 6000 RTP/AVP 96", "a=fmtp:" + "9" * 5000 + " x\r\n"),
    ("m=audio 6000 RTP/AVP 300 -1 x", ""),
])
def test_unusable_payload_types_are_ignored_not_crashed_on(media, extra):
    """Formats and rtpmap/fmtp lines that name no usable payload type are skipped, so
    such an offer has no common codec (488), however long the numbers are."""
    sd = parse_sdp(offer(media=media, extra=extra))
    sd.media[0].fmtp
    with pytest.raises(NoCommonCodec):
        answer(offer(media=media, extra=extra))


def test_an_unreadable_channel_count_is_read_as_mono():
    _, neg = answer(offer(media="m=audio 6000 RTP/AVP 96",
                          extra="a=rtpmap:96 PCMU/8000/" + "1" * 5000 + "\r\n"))
    assert (neg.codec, neg.payload_type) == ("PCMU", 96)


@pytest.mark.parametrize("ptime", ["inf", "-inf", "nan", "1e400", "x", "", "0", "100000"])
def test_an_unusable_ptime_is_ignored(ptime):
    sd, neg = answer(offer(extra=f"a=ptime:{ptime}\r\n"))
    assert neg.ptime == 20


# -- properties --------------------------------------------------------------------------

LINES = st.sampled_from([
    "c=IN IP4 {ip4}", "c=IN IP6 {ip6}", "c=IN {word} {word}", "c={word}",
    "m=audio {num} RTP/AVP {num} {num}", "m=audio {num}/{num} {word} {word}",
    "m={word} {num} RTP/AVP {word}", "a=rtpmap:{num} {word}/{num}/{num}", "a=fmtp:{num} {word}",
    "a=ptime:{word}", "a={word}", "a=sendonly", "a=inactive", "b={word}:{num}", "t={num} {num}",
    "o={word} {num} {num} IN IP4 {ip4}", "k={word}", "r={word}", "{word}",
])
WORDS = st.text(alphabet=st.sampled_from(list("aZ09.:/-_ %\t\x00\u00e9\u2028")), max_size=12)
NUMBERS = st.one_of(st.integers(-5, 70000).map(str), st.sampled_from(["9" * 30, "", "1e9"]))
IP4 = st.one_of(st.ip_addresses(v=4).map(str), st.sampled_from(
    ["10.10.10.256", "1.2.3", "0.0.0.0", "224.0.0.1/3", "a.b.c.d", "::1"]))
IP6 = st.one_of(st.ip_addresses(v=6).map(str), st.sampled_from(["::", "1.2.3.4", ":::"]))


@st.composite
def sdp_bodies(draw) -> bytes:
    lines = ["v=0", "o=- 1 1 IN IP4 192.0.2.7", "s=-", "c=IN IP4 192.0.2.7", "t=0 0",
             "m=audio 6000 RTP/AVP 0 8 101", "a=rtpmap:101 telephone-event/8000"]
    for _ in range(draw(st.integers(1, 6))):
        template = draw(LINES)
        line = template.format_map(_Fill(draw))
        at = draw(st.integers(1, len(lines)))
        if draw(st.booleans()):
            lines[at - 1] = line
        else:
            lines.insert(at, line)
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "surrogatepass")


class _Fill(dict):
    def __init__(self, draw) -> None:
        super().__init__()
        self.draw = draw

    def __missing__(self, key: str) -> str:
        return self.draw({"ip4": IP4, "ip6": IP6, "word": WORDS, "num": NUMBERS}[key])


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(sdp_bodies())
def test_any_sdp_is_answered_or_refused_with_an_sdp_error(body):
    try:
        sd, neg = answer(body)
    except SdpError as exc:
        assert exc.status in (400, 488) and 300 <= exc.warn_code <= 399 and str(exc)
        return
    # what the call layer hands to RtpSession.set_remote is always usable
    assert ipaddress.ip_address(neg.remote_ip) and 0 < neg.remote_port < 65536
    assert 0 <= neg.payload_type < 128 and neg.codec in ("PCMU", "PCMA")
    assert neg.telephone_event_pt is None or 0 <= neg.telephone_event_pt < 128
    assert 0 < neg.ptime <= 1000
    ours = make_offer("192.0.2.50", 40000, session_id=1, version=1)
    try:
        negotiate_answer(ours, parse_sdp(body))
    except SdpError:
        pass
