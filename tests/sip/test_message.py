"""Message framing, headers, serialisation and make_response, over recorded fixtures."""
from __future__ import annotations

from pathlib import Path

import pytest

from ivr.sip.headers import Headers, canonical_name, split_list
from ivr.sip.message import (
    FramingError,
    Request,
    Response,
    SipParseError,
    StreamParser,
    make_response,
    parse_datagram,
    serialize,
)
from ivr.sip.uri import SipSyntaxError
from ivr.sip.validate import check_request, should_accept_response

DATA = Path(__file__).resolve().parents[1] / "data" / "sip"
FIXTURES = sorted(DATA.glob("*.sip"))

OPTIONS = (
    b"OPTIONS sip:ivr@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n"
    b"From: <sip:a@127.0.0.1>;tag=1\r\n"
    b"To: <sip:ivr@127.0.0.1>\r\n"
    b"Call-ID: c1\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _invite_body(body: bytes = b"hello") -> bytes:
    return OPTIONS.replace(b"OPTIONS", b"INVITE").replace(
        b"Content-Length: 0", b"Content-Type: text/plain\r\nContent-Length: %d" % len(body)) + body


# -- recorded fixtures -------------------------------------------------------------------


def test_fixtures_present():
    assert {p.name for p in FIXTURES} == {
        "baresip_invite.sip", "linphone_style_invite.sip", "sipp_uac_invite.sip",
        "sipp_uas_180.sip", "sipp_uas_200.sip"}
    for path in FIXTURES:
        data = path.read_bytes()
        assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_parses_validates_and_round_trips(path):
    data = path.read_bytes()
    message = parse_datagram(data)
    if isinstance(message, Request):
        assert check_request(message) is None
        assert message.method == "INVITE" and message.content_type == "application/sdp"
    else:
        assert should_accept_response(message)
    assert message.body.startswith(b"v=0\r\n") or path.stem == "sipp_uas_180"
    assert len(message.body) == int(message.headers.get("Content-Length"))
    # serialize(parse(x)) == x, except SIPp pads its Content-Length value with spaces.
    assert serialize(message) == data.replace(b"Content-Length:   ", b"Content-Length: ")


def test_fixtures_through_the_stream_parser_whole_and_byte_by_byte():
    data = b"".join(path.read_bytes() for path in FIXTURES)
    whole = StreamParser().feed(data)
    parser = StreamParser()
    split = [item for i in range(len(data)) for item in parser.feed(data[i : i + 1])]
    assert len(whole) == len(split) == len(FIXTURES)
    for a, b, path in zip(whole, split, FIXTURES):
        assert serialize(a) == serialize(b) == serialize(parse_datagram(path.read_bytes()))
    assert parser.buffered == 0


def test_fixture_details():
    baresip = parse_datagram((DATA / "baresip_invite.sip").read_bytes())
    assert baresip.top_via.param("rport") == "" and baresip.top_via.is_rfc3261
    assert baresip.headers.get("Supported") == ""
    assert baresip.headers.get_all("Allow")[:3] == ["INVITE", "ACK", "BYE"]
    linphone = parse_datagram((DATA / "linphone_style_invite.sip").read_bytes())
    (contact,) = linphone.contacts
    assert contact.param("+sip.instance") == '"<urn:uuid:2b3a8f4e-9c1d-4e55-8a7b-0f1e2d3c4b5a>"'
    assert contact.uri.transport == "udp" and contact.param("expires") == "3600"
    assert linphone.from_.display == "Alice Liddell"
    sipp = parse_datagram((DATA / "sipp_uac_invite.sip").read_bytes())
    assert sipp.from_.display == "sipp" and sipp.contacts[0].uri.user == "sipp"


# -- headers -----------------------------------------------------------------------------


@pytest.mark.parametrize("compact,full", [
    ("v", "Via"), ("i", "Call-ID"), ("m", "Contact"), ("f", "From"), ("t", "To"),
    ("l", "Content-Length"), ("c", "Content-Type"), ("k", "Supported"), ("s", "Subject"),
    ("e", "Content-Encoding"), ("o", "Event"), ("r", "Refer-To"), ("u", "Allow-Events"),
    ("x", "Session-Expires"), ("V", "Via"), ("cseq", "CSeq"), ("call-id", "Call-ID"),
    ("www-authenticate", "WWW-Authenticate"), ("x-foo-bar", "X-Foo-Bar"),
])
def test_canonical_names(compact, full):
    assert canonical_name(compact) == full


def test_compact_forms_in_a_message():
    data = (b"OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:x@y>;tag=1\r\n"
            b"t: sip:a@b\r\ni: abc\r\nCSeq: 1 OPTIONS\r\nm: <sip:x@h>\r\nl: 0\r\n\r\n")
    message = parse_datagram(data)
    assert [name for name, _ in message.headers] == [
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Length"]
    assert check_request(message) is None


def test_folding_joins_continuation_lines():
    data = OPTIONS.replace(b"Call-ID: c1\r\n", b"Subject: one\r\n  two\r\n\tthree\r\nCall-ID: c1\r\n")
    assert parse_datagram(data).headers.get("Subject") == "one two three"


def test_repeated_and_comma_joined_headers():
    data = OPTIONS.replace(b"Call-ID: c1\r\n", (
        b"Call-ID: c1\r\nRoute: <sip:p1;lr>, <sip:p2;lr>\r\nRoute: <sip:p3;lr>\r\n"
        b"Via: SIP/2.0/UDP p1;branch=z9hG4bK2, SIP/2.0/TCP p2;branch=z9hG4bK3\r\n"
        b'Contact: "A, B" <sip:a@h>;q=0.5, <sip:b,c@h>\r\n'))
    message = parse_datagram(data)
    assert message.headers.get_all("Route") == ["<sip:p1;lr>", "<sip:p2;lr>", "<sip:p3;lr>"]
    assert message.headers.get("Route") == "<sip:p1;lr>"
    assert [v.host for v in message.vias] == ["127.0.0.1", "p1", "p2"]
    assert [c.display for c in message.contacts] == ["A, B", None]
    assert message.headers.count("Via") == 3


def test_split_list_strict_rejects_empty_elements():
    assert split_list("a,,b") == ["a", "b"]
    with pytest.raises(SipSyntaxError):
        split_list("a,,b", strict=True)
    with pytest.raises(SipSyntaxError):
        split_list('"open, x', strict=True)
    assert split_list('"q\\"x,y" <s:a,b>, c', strict=True) == ['"q\\"x,y" <s:a,b>', "c"]


def test_headers_editing():
    headers = Headers([("v", "SIP/2.0/UDP a"), ("To", "t"), ("Via", "SIP/2.0/UDP b, SIP/2.0/UDP c")])
    headers.prepend("Via", "SIP/2.0/UDP top")
    assert headers.get_all("Via") == ["SIP/2.0/UDP top", "SIP/2.0/UDP a", "SIP/2.0/UDP b",
                                      "SIP/2.0/UDP c"]
    assert headers.pop_first("Via") == "SIP/2.0/UDP top"
    headers.pop_first("Via")
    assert headers.pop_first("Via") == "SIP/2.0/UDP b"
    assert headers.get_raw("Via") == ["SIP/2.0/UDP c"]
    headers.set("to", "u")
    assert headers.get("TO") == "u" and "to" in headers
    headers.remove("Via")
    assert "Via" not in headers and len(headers) == 1


# -- datagrams ---------------------------------------------------------------------------


def test_datagram_content_length_rules():
    assert parse_datagram(_invite_body(b"hello")).body == b"hello"
    # octets past Content-Length are ignored (RFC 3261 18.3)
    assert parse_datagram(_invite_body(b"hello") + b"garbage").body == b"hello"
    with pytest.raises(SipParseError) as info:
        parse_datagram(_invite_body(b"hello")[:-2])
    assert info.value.status == 400 and info.value.request.method == "INVITE"
    no_length = _invite_body(b"").replace(b"Content-Length: 0\r\n", b"") + b"body"
    assert parse_datagram(no_length).body == b"body"


def test_datagram_leading_crlf_and_lowercase_version():
    message = parse_datagram(b"\r\n\r\n" + OPTIONS.replace(b"SIP/2.0\r\n", b"sip/2.0\r\n", 1))
    assert message.version == "SIP/2.0" and message.method == "OPTIONS"


@pytest.mark.parametrize("data,status", [
    (OPTIONS.replace(b"Call-ID: c1\r\n", b"Call-ID c1\r\n"), 400),  # header without colon
    (OPTIONS.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), 505),
    (OPTIONS.replace(b"SIP/2.0\r\n", b"HTTP/1.1\r\n", 1), 400),
    (OPTIONS.replace(b"OPTIONS sip", b"OPT@IONS sip", 1), 400),
    (OPTIONS[:-2], 400),  # no empty line
    (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\nbroken\r\n\r\n", None),
    (b"SIP/2.0 99 Low\r\n\r\n", None),
    (b"SIP/2.0 20 OK\r\n\r\n", None),
    (b"\r\n\r\n", None),
])
def test_datagram_errors(data, status):
    with pytest.raises(SipParseError) as info:
        parse_datagram(data)
    assert info.value.status == status


def test_response_without_reason_phrase_is_tolerated():
    response = parse_datagram(b"SIP/2.0 180\r\nContent-Length: 0\r\n\r\n")
    assert response.status == 180 and response.reason == ""


# -- serialise and make_response -----------------------------------------------------------


def test_serialize_computes_content_length():
    message = parse_datagram(_invite_body(b"hello"))
    message.body = b"longer body"
    wire = serialize(message)
    assert b"Content-Length: 11\r\n" in wire and wire.endswith(b"\r\n\r\nlonger body")
    fresh = Response(200, headers=Headers([("Call-ID", "x")]), body=b"abc")
    assert serialize(fresh) == b"SIP/2.0 200 OK\r\nCall-ID: x\r\nContent-Length: 3\r\n\r\nabc"


def test_make_response_copies_headers_and_adds_to_tag():
    request = parse_datagram(OPTIONS.replace(
        b"Call-ID: c1\r\n", b"Call-ID: c1\r\nVia: SIP/2.0/UDP p2;branch=z9hG4bK9\r\n"
        b"Contact: <sip:a@h>\r\nTimestamp: 54\r\n"))
    response = make_response(request, 200, to_tag="xyz", extra=[("Allow", "INVITE, BYE")])
    assert response.start_line() == "SIP/2.0 200 OK"
    assert list(response.headers) == [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1"),
        ("Via", "SIP/2.0/UDP p2;branch=z9hG4bK9"),
        ("From", "<sip:a@127.0.0.1>;tag=1"),
        ("To", "<sip:ivr@127.0.0.1>;tag=xyz"),
        ("Call-ID", "c1"),
        ("CSeq", "1 OPTIONS"),
        ("Allow", "INVITE, BYE"),
    ]
    assert response.to.tag == "xyz"
    trying = make_response(request, 100)
    assert trying.headers.get("Timestamp") == "54" and trying.to.tag is None
    tagged = parse_datagram(OPTIONS.replace(b"<sip:ivr@127.0.0.1>", b"<sip:ivr@127.0.0.1>;tag=old"))
    assert make_response(tagged, 486, to_tag="new").to.tag == "old"


# -- streams -------------------------------------------------------------------------------


def test_stream_two_messages_in_one_chunk():
    items = StreamParser().feed(OPTIONS + _invite_body(b"abc"))
    assert [m.method for m in items] == ["OPTIONS", "INVITE"] and items[1].body == b"abc"


@pytest.mark.parametrize("byte_by_byte", [False, True])
def test_stream_keep_alive(byte_by_byte):
    data = b"\r\n\r\n" + OPTIONS + b"\r\n\r\n" + b"\r\n" + OPTIONS
    parser = StreamParser()
    chunks = [data[i : i + 1] for i in range(len(data))] if byte_by_byte else [data]
    items = [item for chunk in chunks for item in parser.feed(chunk)]
    assert [i if isinstance(i, str) else i.method for i in items] == [
        "ping", "OPTIONS", "ping", "OPTIONS"]


def test_stream_body_split_across_feeds():
    parser = StreamParser()
    data = _invite_body(b"0123456789")
    assert parser.feed(data[:-7]) == [] and parser.waiting_for_body
    assert parser.feed(data[-7:-1]) == []
    (message,) = parser.feed(data[-1:])
    assert message.body == b"0123456789" and not parser.waiting_for_body


def test_stream_missing_content_length_means_empty_body():
    (message,) = StreamParser().feed(OPTIONS.replace(b"Content-Length: 0\r\n", b""))
    assert message.body == b""


def test_stream_header_section_over_the_limit():
    parser = StreamParser(max_header_bytes=256)
    with pytest.raises(FramingError) as info:
        parser.feed(b"INVITE sip:a@b SIP/2.0\r\n" + b"X-Pad: " + b"a" * 300)
    assert info.value.status is None
    with pytest.raises(FramingError):
        StreamParser(max_header_bytes=256).feed(OPTIONS.replace(b"Call-ID: c1", b"Call-ID: " + b"c" * 300))


def test_stream_body_over_the_limit_is_413():
    with pytest.raises(FramingError) as info:
        StreamParser(max_body_bytes=10).feed(_invite_body(b"x" * 11))
    assert info.value.status == 413


def test_stream_bad_message_is_answered_and_stream_continues():
    bad = OPTIONS.replace(b"OPTIONS sip:ivr@127.0.0.1 SIP/2.0", b"OPTIONS  sip:ivr@127.0.0.1 SIP/2.0")
    bad = bad.replace(b"Content-Length: 0", b"Content-Length: 3") + b"abc"
    items = StreamParser().feed(bad + OPTIONS)
    assert isinstance(items[0], SipParseError) and items[0].status == 400
    assert items[0].request.method == "OPTIONS" and items[0].request.body == b"abc"
    assert items[1].method == "OPTIONS"


def test_stream_framing_error_keeps_earlier_messages():
    bad = OPTIONS.replace(b"Content-Length: 0", b"Content-Length: -1")
    with pytest.raises(FramingError) as info:
        StreamParser().feed(OPTIONS + bad)
    assert [m.method for m in info.value.messages] == ["OPTIONS"]
    assert info.value.status == 400 and info.value.request.method == "OPTIONS"
