"""a=rtcp (RFC 3605) and a=rtcp-mux (RFC 5761) in offer/answer."""
from ivr.sdp import make_answer, make_offer, negotiate_answer, parse_sdp, serialize_sdp

OFFER = ("v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
         "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
         "a=rtpmap:101 telephone-event/8000\r\n{extra}")


def answer(extra: str):
    return make_answer(parse_sdp(OFFER.format(extra=extra).encode()), "127.0.0.1", 30000,
                       session_id=1, version=1)


def test_a_rtcp_port_and_address_reach_the_negotiated_media():
    _, n = answer("a=rtcp:4711 IN IP4 203.0.113.7\r\n")
    assert (n.rtcp_port, n.rtcp_ip, n.rtcp_mux) == (4711, "203.0.113.7", False)
    _, n = answer("a=rtcp:4001\r\n")
    assert (n.rtcp_port, n.rtcp_ip) == (4001, None)
    _, n = answer("")
    assert (n.rtcp_port, n.rtcp_ip, n.rtcp_mux) == (None, None, False)


def test_a_malformed_a_rtcp_is_ignored_not_refused():
    for bad in ("a=rtcp:0\r\n", "a=rtcp:99999\r\n", "a=rtcp:x\r\n", "a=rtcp\r\n",
                "a=rtcp:4001 IN IP4 phone.example\r\n", "a=rtcp:4001 IN IP4 0.0.0.0\r\n",
                "a=rtcp:4001 IN IP4 224.0.0.1\r\n"):
        sdp, n = answer(bad)
        assert n.rtcp_ip is None and n.remote_port == 4000, bad
        assert n.rtcp_port in (None, 4001), bad


def test_rtcp_mux_is_accepted_when_offered_and_only_then():
    sdp, n = answer("a=rtcp-mux\r\na=rtcp:4000\r\n")
    assert n.rtcp_mux and "a=rtcp-mux\r\n" in serialize_sdp(sdp).decode()
    sdp, n = answer("")
    assert not n.rtcp_mux and b"rtcp-mux" not in serialize_sdp(sdp)


def test_our_offer_has_no_mux_so_an_answer_cannot_impose_it():
    offer = make_offer("127.0.0.1", 30000, session_id=1, version=1)
    their = parse_sdp(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
                      b"m=audio 5000 RTP/AVP 0\r\na=rtcp-mux\r\na=rtcp:5009\r\n")
    n = negotiate_answer(offer, their)
    assert not n.rtcp_mux and n.rtcp_port == 5009
