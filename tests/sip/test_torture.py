"""RFC 4475 and RFC 5118 torture messages: every file, datagram and stream, whole and
byte by byte (STYLE rules 8 and 11).  Expected outcomes condensed from INDEX.txt."""
from __future__ import annotations

from pathlib import Path

import pytest

from ivr.sip.message import (
    FramingError,
    Request,
    Response,
    SipParseError,
    StreamParser,
    parse_datagram,
    serialize,
)
from ivr.sip.validate import check_request, should_accept_response

#: The RFC 4475 / RFC 5118 messages (public IETF test data) with each file's expected
#: handling in INDEX.txt, kept in the repository so a clone runs these tests on its own.
TORTURE = Path(__file__).resolve().parents[1] / "data" / "sip-torture"

ACCEPT, DROP = ("ACCEPT", None), ("DROP", None)


def REJECT(code: int) -> tuple[str, int]:
    return ("REJECT", code)


#: name -> outcome with the default check_request configuration.
EXPECTED = {
    # 3.1.1 valid
    "wsinv": ACCEPT, "intmeth": REJECT(501), "esc01": ACCEPT, "escnull": ACCEPT,
    "esc02": REJECT(501), "lwsdisp": ACCEPT, "longreq": ACCEPT, "dblreq": ACCEPT,
    "semiuri": ACCEPT, "transports": ACCEPT,
    # well-formed; multipart/mixed is not one of our content types, so 415 (RFC 3261 8.2.3)
    "mpart01": REJECT(415), "unreason": ACCEPT, "noreason": ACCEPT,
    # 3.1.2 invalid
    "badinv01": REJECT(400), "clerr": REJECT(400), "ncl": REJECT(400), "scalar02": REJECT(400),
    "scalarlg": DROP, "quotbal": REJECT(400), "ltgtruri": REJECT(400), "lwsruri": REJECT(400),
    "lwsstart": REJECT(400), "trws": REJECT(400), "escruri": REJECT(400), "baddate": ACCEPT,
    "regbadct": REJECT(400), "badaspec": REJECT(400), "baddn": REJECT(400),
    "badvers": REJECT(505), "mismatch01": REJECT(400), "mismatch02": REJECT(501),
    "bigcode": DROP,
    # 3.2 / 3.3 / 3.4
    "badbranch": REJECT(400), "insuf": REJECT(400), "unkscm": REJECT(416),
    "novelsc": REJECT(416), "unksm2": REJECT(400), "bext01": REJECT(420), "invut": REJECT(415),
    "regaut01": ACCEPT, "multi01": REJECT(400), "mcl01": REJECT(400), "bcast": DROP,
    "zeromf": ACCEPT, "cparam01": ACCEPT, "cparam02": ACCEPT, "regescrt": ACCEPT,
    "sdp01": REJECT(406), "inv2543": ACCEPT,
    # RFC 5118
    "ipv6-good": ACCEPT, "ipv6-bad": REJECT(400), "port-ambiguous": ACCEPT,
    "port-unambiguous": ACCEPT, "via-received-param-with-delim": ACCEPT,
    "via-received-param-no-delim": ACCEPT, "ipv6-in-sdp": ACCEPT, "mult-ip-in-header": ACCEPT,
    "mult-ip-in-sdp": ACCEPT, "ipv4-mapped-ipv6": ACCEPT, "ipv6-bug-abnf-3-colons": ACCEPT,
    "ipv6-correct-abnf-2-colons": ACCEPT,
}

#: On a stream these differ from the datagram outcome.
STREAM_WAITS = {"clerr", "rfc4475/baddn"}  # incomplete: wait for more bytes
STREAM_FRAMING = {"ncl", "mcl01"}  # Content-Length unusable: close the connection

FILES = (
    sorted((TORTURE / "rfc4475").glob("*.dat"))
    + sorted((TORTURE / "rfc5118" / "wire").glob("*.dat"))
    + [TORTURE / "rfc4475" / "wire-variants" / "baddn.dat"]
)


def _id(path: Path) -> str:
    return str(path.relative_to(TORTURE))[: -len(".dat")]


def test_every_file_is_covered():
    assert len(FILES) == 49 + 12 + 1
    assert {path.stem for path in FILES} == set(EXPECTED)


def outcome(item) -> tuple[str, int | None]:
    if isinstance(item, SipParseError):
        return DROP if item.status is None else REJECT(item.status)
    if isinstance(item, Request):
        rejection = check_request(item)
        return ACCEPT if rejection is None else REJECT(rejection.status)
    assert isinstance(item, Response)
    return ACCEPT if should_accept_response(item) else DROP


def datagram_outcome(data: bytes):
    try:
        message = parse_datagram(data)
    except SipParseError as exc:
        return outcome(exc)
    return outcome(message)


def _snapshot(items):
    out = []
    for item in items:
        if isinstance(item, SipParseError):
            out.append(("error", item.status, item.reason))
        elif isinstance(item, str):
            out.append(item)
        else:
            out.append((item.start_line(), list(item.headers), item.body))
    return out


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_datagram(path):
    assert datagram_outcome(path.read_bytes()) == EXPECTED[path.stem]


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_stream_whole_and_byte_by_byte(path):
    data = path.read_bytes()
    key = _id(path).removeprefix("rfc4475/") if path.stem != "baddn" else _id(path)
    results = []
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))]):
        parser = StreamParser()
        items = []
        try:
            for chunk in chunks:
                items.extend(parser.feed(chunk))
        except FramingError as exc:
            assert key in STREAM_FRAMING
            assert exc.status == 400 and exc.request is not None
            results.append(("framing", exc.reason))
            continue
        assert key not in STREAM_FRAMING
        if key in STREAM_WAITS:
            assert items == [] and parser.buffered > 0
        else:
            assert items and outcome(items[0]) == EXPECTED[path.stem]
        results.append(_snapshot(items))
    whole, byte_by_byte = results
    assert whole == byte_by_byte


def test_stream_clerr_waits_for_the_body_then_frames_it():
    data = (TORTURE / "rfc4475" / "clerr.dat").read_bytes()
    parser = StreamParser()
    assert parser.feed(data) == []
    assert parser.waiting_for_body
    items = parser.feed(b"x" * (9999 - parser.buffered))
    assert len(items) == 1 and len(items[0].body) == 9999


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_round_trip(path):
    try:
        message = parse_datagram(path.read_bytes())
    except SipParseError:
        return  # nothing to round-trip; the outcome is checked above
    again = parse_datagram(serialize(message))
    assert type(again) is type(message)
    assert again.start_line() == message.start_line()
    strip = lambda m: [(n, v) for n, v in m.headers if n != "Content-Length"]  # noqa: E731
    assert strip(again) == strip(message)
    assert again.body == message.body
    assert again.headers.get_raw("Content-Length") == [str(len(message.body))]


def test_round_trip_is_exercised_for_every_parseable_file():
    parsed = 0
    for path in FILES:
        try:
            parse_datagram(path.read_bytes())
            parsed += 1
        except SipParseError:
            pass
    # 62 files minus the 9 the parser itself refuses (baddn archive, badvers, bigcode,
    # clerr, lwsruri, lwsstart, mcl01, ncl, trws).
    assert parsed == 62 - 9


# -- what the valid messages mean (not just that they parse) ---------------------------

WELL_FORMED = sorted(
    name for name, result in EXPECTED.items()
    if result == ACCEPT or name in ("intmeth", "esc02", "mpart01", "mismatch02")
)


def load(name: str):
    for path in FILES:
        if path.stem == name and "wire-variants" not in str(path):
            return parse_datagram(path.read_bytes())
    raise KeyError(name)


@pytest.mark.parametrize("name", WELL_FORMED)
def test_headers_of_well_formed_messages_parse(name):
    message = load(name)
    assert message.vias and all(via.host for via in message.vias)
    assert message.from_.uri is not None and message.to.uri is not None
    number, method = message.cseq
    assert number >= 0 and method
    for contact in message.contacts:
        assert contact.uri is not None


def test_wsinv_details():
    m = load("wsinv")
    assert m.method == "INVITE"
    assert m.to.tag == "1918181833n"
    assert m.from_.display == 'J Rosenberg \\"' and m.from_.tag == "98asjd8"
    assert m.headers.get("Max-Forwards") == "0068"
    assert m.cseq == (9, "INVITE")
    assert [v.transport for v in m.vias] == ["UDP", "TCP", "UDP"]
    assert [v.branch for v in m.vias] == ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"]
    assert not m.vias[0].is_rfc3261 and m.vias[1].is_rfc3261
    (contact,) = m.contacts
    assert contact.display == 'Quoted string ""'
    assert contact.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert m.headers.get("Subject") == ""
    assert m.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert len(m.body) == 150


def test_intmeth_details():
    m = load("intmeth")
    assert m.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert m.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert m.from_.display == "token1~` token2'+_ token3*%!.-"
    assert m.from_.tag == "_token~1'+`*%!-."
    from ivr.sip.uri import parse_uri
    uri = parse_uri(m.uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com" and uri.headers is None


def test_esc01_keeps_escapes_and_unescapes_once():
    m = load("esc01")
    assert m.to.uri.user == "%75se%72" and m.to.uri.user_unescaped == "user"
    (contact,) = m.contacts
    assert contact.uri.params == (("%6C%72", None), ("n%61me", "v%61lue%25%34%31"))


def test_escnull_two_distinct_contacts_and_no_truncation():
    m = load("escnull")
    contacts = m.contacts
    assert [c.uri.user for c in contacts] == ["%00", "%00%00"]
    assert contacts[0].uri != contacts[1].uri
    assert m.to.uri.user_unescaped == "null-\x00-null"


def test_esc02_is_not_register_and_has_two_contacts():
    m = load("esc02")
    assert m.method == "RE%47IST%45R" != "REGISTER"
    assert len(m.contacts) == 2
    assert m.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert m.to.display == "%Z%45"


def test_semiuri_user_part():
    from ivr.sip.uri import parse_uri
    uri = parse_uri(load("semiuri").uri)
    assert uri.user == "user;par=u%40example.net" and uri.host == "example.com"
    assert uri.params == ()


def test_dblreq_ignores_trailing_octets():
    m = load("dblreq")
    assert m.method == "REGISTER" and m.body == b""


def test_inv2543_body_is_rest_of_datagram_and_uses_2543_matching():
    m = load("inv2543")
    assert m.body.startswith(b"v=0\r\n") and m.body.endswith(b"RTP/AVP 0\r\n")
    assert m.top_via.branch is None and not m.top_via.is_rfc3261
    assert m.from_.tag is None and "Max-Forwards" not in m.headers


def test_contact_params_placement():
    (c1,) = load("cparam01").contacts
    assert c1.uri.params == () and c1.params == (("unknownparam", None),)
    (c2,) = load("cparam02").contacts
    assert c2.uri.params == (("unknownparam", None),) and c2.params == ()
    (c3,) = load("regescrt").contacts
    assert c3.uri.headers == "Route=%3Csip:sip.example.com%3E"
    assert str(c3.uri) == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"


def test_transports_vias():
    assert [v.transport for v in load("transports").vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_longreq_nothing_truncated():
    m = load("longreq")
    assert len(m.vias) == 34
    raw = (TORTURE / "rfc4475" / "longreq.dat").read_bytes()
    tag = raw.split(b";tag=")[1].split(b";")[0].decode()
    assert m.from_.tag == tag and len(tag) == 155
    assert m.vias[-1].branch.startswith("verylong") and m.vias[-1].branch.endswith("branchvalue")


def test_mpart01_binary_body_framed_by_content_length():
    m = load("mpart01")
    assert len(m.body) == 553 and b"\x00" in m.body
    assert m.content_type == "multipart/mixed"
    assert check_request(m, content_types=frozenset({"multipart/mixed"})) is None


def test_rfc5118_hosts_and_ports():
    from ivr.sip.uri import parse_uri
    ambiguous = parse_uri(load("port-ambiguous").uri)
    assert ambiguous.host == "[2001:db8::10:5070]" and ambiguous.port is None
    unambiguous = parse_uri(load("port-unambiguous").uri)
    assert unambiguous.host == "[2001:db8::10]" and unambiguous.port == 5070
    assert load("via-received-param-with-delim").top_via.param("received") == "[2001:db8::9:255]"
    assert load("via-received-param-no-delim").top_via.param("received") == "2001:db8::9:255"
    assert load("ipv6-bug-abnf-3-colons").to.uri.host == "[2001:db8:::192.0.2.1]"
    vias = load("mult-ip-in-header").vias
    assert [(v.host, v.port) for v in vias] == [
        ("[2001:db8::9:1]", 6050), ("192.0.2.1", None), ("[2001:db8::9:255]", None)]
    assert load("ipv4-mapped-ipv6").contacts[0].uri.host == "[::ffff:192.0.2.2]"


def test_responses_with_odd_reason_phrases():
    noreason = load("noreason")
    assert noreason.status == 100 and noreason.reason == ""
    unreason = load("unreason")
    assert unreason.status == 200 and unreason.reason.startswith("= 2**3 * 5**2 ")
    assert "\u043d\u043e" in unreason.reason  # UTF-8 decoded, not mangled
