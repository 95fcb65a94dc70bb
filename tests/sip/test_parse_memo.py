"""The header-parser memo (ivr.sip.uri._memoised) and the canonical-name memo."""
from __future__ import annotations

import pytest

from ivr.sip import uri
from ivr.sip.headers import Headers, canonical_name
from ivr.sip.message import parse_datagram
from ivr.sip.uri import MEMO_SIZE, SipSyntaxError, parse_name_addr, parse_via

INVITE = (b"INVITE sip:bob@example.com SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKone\r\n"
          b"From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n"
          b"Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")


def test_same_text_gives_the_same_frozen_value():
    text = '"Al" <sip:alice@example.com>;tag=memo-1'
    first = parse_name_addr(text)
    assert parse_name_addr(text) is first
    assert first.display == "Al" and first.params == (("tag", "memo-1"),)


def test_errors_are_raised_every_time_and_not_remembered():
    for _ in range(2):
        with pytest.raises(SipSyntaxError):
            parse_via("SIP/2.0/UDP 10.0.0.1;branch=")
    assert "SIP/2.0/UDP 10.0.0.1;branch=" not in parse_via.cache


def test_memo_stays_bounded_and_long_texts_are_not_kept():
    for i in range(MEMO_SIZE + 10):
        parse_via(f"SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKflood{i}")
    assert len(parse_via.cache) <= MEMO_SIZE
    long = "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK" + "x" * uri.MEMO_MAX_TEXT
    assert parse_via(long).branch.endswith("x")
    assert long not in parse_via.cache


def test_a_changed_header_is_parsed_afresh():
    message = parse_datagram(INVITE)
    assert message.top_via.branch == "z9hG4bKone"
    message.headers.set("Via", "SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bKtwo")
    assert (message.top_via.host, message.top_via.branch) == ("10.0.0.2", "z9hG4bKtwo")
    message.headers.set("To", "<sip:bob@example.com>;tag=b")
    assert message.to.params == (("tag", "b"),)
    message.headers.remove("CSeq")
    with pytest.raises(SipSyntaxError):
        message.cseq


def test_canonical_name_memo_gives_the_same_answers():
    for name in ("v", "VIA", "call-id", "x-foo-bar", "WWW-authenticate", "cseq"):
        assert canonical_name(name) == canonical_name(name)
    assert canonical_name("V") == "Via" and canonical_name("CALL-ID") == "Call-ID"
    assert canonical_name("x-foo-bar") == "X-Foo-Bar"
    headers = Headers([("v", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b")])
    assert headers.get("via") == "SIP/2.0/UDP a;branch=z9hG4bK1"  # still a list header
    assert headers.get_all("Via") == ["SIP/2.0/UDP a;branch=z9hG4bK1", "SIP/2.0/UDP b"]



@pytest.mark.parametrize("value", ["", " ", "a", " a\t", '"x,y" <sip:a>', "<sip:a,b>",
                                   '"unterminated', "<sip:a", ' "q\\"x" <sip:a>;p=1 ', "a, b"])
def test_split_list_fast_path_agrees_with_the_full_scan(value):
    from ivr.sip.headers import _scan_list, split_list
    assert split_list(value) == _scan_list(value, False)
