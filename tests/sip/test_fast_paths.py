"""The SIP hot path's shortcuts give the answers of the slow paths they stand in for:
the Headers index, split_list's strict shortcut, the token/URI regexes, the unfolding
shortcut, the _same_host memo and the UA's single validation of a request."""
from __future__ import annotations

import random
import re

import pytest
from twisted.internet import task

from ivr.sip import uri
from ivr.sip.headers import LIST_HEADERS, Headers, _scan_list, canonical_name, split_list
from ivr.sip.message import Request, _unfold, parse_datagram
from ivr.sip.transport import Source, _same_host, stamp_via
from ivr.sip.ua import UserAgent
from ivr.sip.uri import SipSyntaxError


# -- Headers: the index always shows the current list --------------------------------------

def _reference(items: list[tuple[str, str]], name: str):
    """get/get_raw/get_all/contains by scanning the items, as Headers did without an index."""
    key = canonical_name(name)
    raw = [v for n, v in items if n == key]
    is_list = key.lower() in LIST_HEADERS
    every = [x for v in raw for x in split_list(v)] if is_list else list(raw)
    first = None
    if raw:
        parts = split_list(raw[0]) if is_list else [raw[0]]
        first = parts[0] if parts else raw[0]
    return first, raw, every, bool(raw)


NAMES = ["Via", "v", "To", "Contact", "m", "X-Custom", "CSeq", "cseq", "Route"]
VALUES = ["SIP/2.0/UDP a;branch=z9hG4bK1", "a, b", "<sip:x@y>;tag=1", "", " c ", '"q,x" <s:a>']


def test_headers_index_follows_every_change():
    rng = random.Random(4475)
    for _ in range(200):
        headers = Headers([(rng.choice(NAMES), rng.choice(VALUES)) for _ in range(rng.randrange(6))])
        for _ in range(12):
            for name in NAMES:  # read first, so that an index exists before each change
                first, raw, every, present = _reference(list(headers), name)
                assert headers.get(name) == first
                assert headers.get_raw(name) == raw
                assert headers.count_raw(name) == len(raw)
                assert headers.get_all(name) == every
                assert (name in headers) == present
            op, name, value = rng.randrange(5), rng.choice(NAMES), rng.choice(VALUES)
            if op == 0:
                headers.add(name, value)
            elif op == 1:
                headers.prepend(name, value)
            elif op == 2:
                headers.set(name, value)
            elif op == 3:
                headers.remove(name)
            else:
                headers.pop_first(name)


def test_headers_copy_and_get_raw_do_not_share_the_index():
    headers = Headers([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1"), ("To", "<sip:b@c>")])
    assert headers.get("To") == "<sip:b@c>"
    raw = headers.get_raw("Via")
    raw.append("SIP/2.0/UDP evil")
    assert headers.get_raw("Via") == ["SIP/2.0/UDP a;branch=z9hG4bK1"]
    copy = headers.copy()
    copy.set("To", "<sip:b@c>;tag=x")
    assert headers.get("To") == "<sip:b@c>" and copy.get("To") == "<sip:b@c>;tag=x"


def test_a_stamped_via_is_what_the_next_reader_sees():
    message = parse_datagram(
        b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bKst\r\n"
        b"From: <sip:a@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\nCall-ID: st1\r\n"
        b"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    assert message.top_via.param("received") is None  # builds the index
    stamp_via(message, Source("UDP", "192.0.2.7", 4000))
    assert message.top_via.param("received") == "192.0.2.7"
    assert message.top_via.param("rport") == "4000"
    assert message.headers.get_raw("Via") == [str(message.top_via)]


# -- split_list(strict=True) without a comma -----------------------------------------------

@pytest.mark.parametrize("value", [
    "", " ", "\t", "a", " a\t", "<sip:a>", "<sip:a", "sip:a>", "<<sip:a>", "<a><b", "<a>x<b>",
    '"x" <sip:a>', '"unterminated <sip:a>', '"q\\"x" <sip:a>;p=1', '"esc\\', "a>b<c", "a<b>c",
    "SIP/2.0/UDP h;branch=z9hG4bK1", ' "" ',
])
def test_strict_split_without_commas_agrees_with_the_scan(value):
    try:
        expected = _scan_list(value, True)
    except SipSyntaxError:
        with pytest.raises(SipSyntaxError):
            split_list(value, strict=True)
        return
    assert split_list(value, strict=True) == expected


# -- the regex forms of the character checks -----------------------------------------------

_CHARS = [chr(c) for c in range(0, 0x250)] + ["\udc80", "\udcff", "\u00e9", "\u2028", "\uff10"]


def test_token_regexes_match_the_character_sets():
    for ch in _CHARS:
        assert uri.is_token(ch) == (ch in uri._TOKEN_CHARS), repr(ch)
        assert uri.is_token("ab" + ch + "c") == (ch in uri._TOKEN_CHARS), repr(ch)
        assert (uri._PARAM_VALUE_RE.fullmatch("x" + ch) is not None) == (
            ch in uri._TOKEN_CHARS or ch == ":"), repr(ch)
        bad = ch in uri._OPAQUE_BAD or ord(ch) < 32 or ord(ch) > 126
        assert (uri._URI_BAD_RE.search("sip:a" + ch + "b@h") is not None) == bad, repr(ch)
    assert not uri.is_token("")
    assert uri.is_token("INVITE") and not uri.is_token("INV ITE") and not uri.is_token("a\n")


def test_uri_with_a_forbidden_character_still_fails():
    for text in ("sip:a b@h", "sip:a@h\x7f", "sip:a@h\u00e9", "sip:<a>@h", "sip:a|b@h"):
        with pytest.raises(SipSyntaxError):
            uri.parse_uri(text)


# -- unfolding -------------------------------------------------------------------------------

def _unfold_reference(head: str) -> list[str]:
    lines: list[str] = []
    for line in re.split(r"\r\n|\n", head):
        if line[:1] in (" ", "\t") and len(lines) > 1:
            lines[-1] = lines[-1].rstrip(" \t") + " " + line.strip(" \t")
        else:
            lines.append(line)
    return lines


@pytest.mark.parametrize("head", [
    "INVITE sip:a@b SIP/2.0\r\nVia: x\r\nTo: y",
    "INVITE sip:a@b SIP/2.0\nVia: x\nTo: y",
    "INVITE sip:a@b SIP/2.0\r\nSubject: one\r\n two\r\n\tthree\r\nTo: y",
    "INVITE sip:a@b SIP/2.0\r\n Via: x",          # a continuation of the start line is not joined
    "INVITE sip:a@b SIP/2.0\r\nTo: y \r\n",
    "",
])
def test_unfold_shortcut_agrees_with_the_loop(head):
    assert _unfold(head) == _unfold_reference(head)


# -- _same_host memo -------------------------------------------------------------------------

def test_same_host_answers_do_not_leak_between_pairs():
    cases = [("127.0.0.1", "127.0.0.1", True), ("127.0.0.1", "127.0.0.2", False),
             ("::1", "[::1]", True), ("[2001:db8::1]", "2001:db8:0::1", True),
             ("example.com", "192.0.2.1", False), ("192.0.2.1", "example.com", False)]
    for _ in range(2):  # the second round comes from the memo
        for a, b, same in cases:
            assert _same_host(a, b) is same, (a, b)


# -- the UA validates a request once ---------------------------------------------------------

class _Transport:
    def __init__(self) -> None:
        self.sent: list = []

    def send_request(self, request, dest) -> None:
        self.sent.append(request)

    def send_response(self, response, source) -> None:
        self.sent.append(response)

    def is_reliable(self, where) -> bool:
        return False


class _App:
    def __init__(self) -> None:
        self.sessions: list = []

    def incoming_call(self, session) -> None:
        self.sessions.append(session)


def _options(call_id: str, max_forwards: str = "70") -> Request:
    return parse_datagram(
        f"OPTIONS sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{call_id}\r\n"
        f"Max-Forwards: {max_forwards}\r\nFrom: <sip:a@127.0.0.1>;tag=f\r\nTo: <sip:ivr@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n".encode())


def test_requests_are_checked_once_in_front_of_the_transaction_layer(monkeypatch):
    from ivr.sip import ua as ua_module
    transport = _Transport()
    ua = UserAgent(task.Clock(), transport, _App(), "127.0.0.1", 5060)
    checked: list = []
    real = ua_module.check_request
    monkeypatch.setattr(ua_module, "check_request", lambda r: checked.append(r) or real(r))
    source = Source("UDP", "127.0.0.1", 5070)

    good = _options("good1")
    ua.receive(good, source)
    assert checked == [good]  # once, before the transaction layer
    assert [r.status for r in transport.sent] == [200]
    transactions = dict(ua.layer.servers)

    # A bad request is answered statelessly and never reaches the transaction layer.
    bad = _options("bad1", max_forwards="lots")
    ua.receive(bad, source)
    assert checked[-1] is bad
    assert [r.status for r in transport.sent] == [200, 400]
    assert ua.layer.servers == transactions
