"""The lookup memos (Headers.get's per-message answers, the parser's known header names)
never show a stale or wrongly accepted value."""
import pytest

from ivr.sip.headers import Headers
from ivr.sip.message import SipParseError, make_response, parse_datagram, serialize

INVITE = (b"INVITE sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1, SIP/2.0/UDP g\r\n"
          b"From: <sip:b@h>;tag=1\r\nTo: <sip:a@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
          b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")


def test_get_after_every_change_sees_the_change():
    h = Headers([("Via", "SIP/2.0/UDP a"), ("Call-ID", "x")])
    assert h.get("Via") == "SIP/2.0/UDP a" and h.get("v") == "SIP/2.0/UDP a"
    assert h.get("Route") is None and h.get("Route", "d") == "d"
    h.prepend("Via", "SIP/2.0/UDP b")
    assert h.get("Via") == "SIP/2.0/UDP b" and h.get("v") == "SIP/2.0/UDP b"
    h.add("Route", "<sip:r>")
    assert h.get("Route") == "<sip:r>"
    h.set("Call-ID", "y")
    assert h.get("Call-ID") == "y" and h.get("i") == "y"
    h.pop_first("Via")
    assert h.get("Via") == "SIP/2.0/UDP a"
    h.remove("Via")
    assert h.get("Via") is None and h.get("v", "none") == "none"
    c = h.copy()
    c.set("Call-ID", "z")
    assert h.get("Call-ID") == "y" and c.get("Call-ID") == "z"


def test_parsed_message_get_memo_follows_a_stamped_via():
    request = parse_datagram(INVITE)
    assert request.top_via.host == "h"
    request.headers.pop_first("Via")
    request.headers.prepend("Via", "SIP/2.0/UDP h;branch=z9hG4bK1;received=10.0.0.1")
    assert request.top_via.param("received") == "10.0.0.1"
    response = make_response(request, 200, to_tag="t")
    assert response.headers.get_raw("Via")[0].endswith("received=10.0.0.1")
    assert response.to.tag == "t"
    assert serialize(parse_datagram(serialize(response))) == serialize(response)


@pytest.mark.parametrize("line", [b"Via", b"Call-ID", b"To <sip:x@h>"])
def test_a_known_header_name_without_a_colon_is_still_a_bad_line(line):
    parse_datagram(INVITE)  # the names are known now
    data = INVITE.replace(b"Max-Forwards: 70\r\n", line + b"\r\n")
    with pytest.raises(SipParseError) as err:
        parse_datagram(data)
    assert err.value.status == 400 and "bad header line" in err.value.reason


def test_header_names_with_blanks_before_the_colon_are_still_read():
    data = INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards \t: 70")
    assert parse_datagram(data).headers.get("Max-Forwards") == "70"
