"""URIs, name-addr / addr-spec, Via and CSeq grammar (RFC 3261 19.1, 20; RFC 5118)."""
from __future__ import annotations

import pytest

from ivr.sip.uri import (
    AbsoluteUri,
    NameAddr,
    SipSyntaxError,
    SipUri,
    is_ip_address,
    is_rfc3261_branch,
    parse_cseq,
    parse_name_addr,
    parse_uri,
    parse_via,
    quote_string,
)


def test_full_sip_uri():
    uri = parse_uri("sips:alice:secret@example.com:5061;transport=tcp;lr?Subject=hi&Priority=urgent")
    assert uri == SipUri("sips", "alice", "secret", "example.com", 5061,
                         (("transport", "tcp"), ("lr", None)), "Subject=hi&Priority=urgent")
    assert uri.transport == "tcp" and uri.param("LR") == ""
    assert str(uri) == "sips:alice:secret@example.com:5061;transport=tcp;lr?Subject=hi&Priority=urgent"


def test_uri_without_user_and_with_params():
    uri = parse_uri("sip:127.0.0.1:5080;maddr=239.255.255.1;ttl=15")
    assert uri.user is None and uri.host == "127.0.0.1" and uri.port == 5080
    assert uri.param("maddr") == "239.255.255.1"
    assert str(uri.with_param("lr")) == "sip:127.0.0.1:5080;maddr=239.255.255.1;ttl=15;lr"


def test_escapes_kept_and_unescaped_once():
    uri = parse_uri("sip:value%2541@h")
    assert uri.user == "value%2541" and uri.user_unescaped == "value%41"


@pytest.mark.parametrize("text,host,port", [
    ("sip:[2001:db8::10]", "[2001:db8::10]", None),
    ("sip:[2001:db8::10]:5070", "[2001:db8::10]", 5070),
    ("sip:[2001:db8::10:5070]", "[2001:db8::10:5070]", None),
    ("sip:u@[::ffff:192.0.2.2]", "[::ffff:192.0.2.2]", None),
    ("sip:u@[2001:db8:::192.0.2.1]", "[2001:db8:::192.0.2.1]", None),  # RFC 5118 4.10
    ("sip:u@host.example.com.", "host.example.com.", None),
])
def test_hosts(text, host, port):
    uri = parse_uri(text)
    assert (uri.host, uri.port) == (host, port)


@pytest.mark.parametrize("text", [
    "sip:2001:db8::10",  # RFC 5118 4.2
    "sip:[2001:db8::10", "sip:[2001:db8::g]", "sip:[1:2:3]", "sip:[::1]x",
    "sip:u@256.1.1.1", "sip:u@host:99999", "sip:u@host:", "sip:u@host:5o60", "sip:u@ho st",
    "<sip:u@h>", "sip:u@h; lr", "sip:", "sip:@h", "sip:u%zz@h", "sip:u@h;a=b c",
    "sip:u@h;;lr", "sip:u@h?Route", "sip:u@-bad-.com", "sip:u@h;x=\u00e9", "1sip:u@h",
    "sip:u@h:\u00b2",
])
def test_bad_uris(text):
    with pytest.raises(SipSyntaxError):
        parse_uri(text)


def test_other_schemes_stay_opaque():
    assert parse_uri("tel:+1-201-555-0123") == AbsoluteUri("tel", "+1-201-555-0123")
    assert parse_uri("soap.beep://192.0.2.103:3002").scheme == "soap.beep"
    assert str(parse_uri("TEL:+1")) == "tel:+1"


@pytest.mark.parametrize("text,display,uri,params", [
    ('"Alice \\"A\\" Smith" <sip:a@h>;tag=1', 'Alice "A" Smith', "sip:a@h", (("tag", "1"),)),
    ("Bob  Jones <sip:b@h>", "Bob Jones", "sip:b@h", ()),
    ("caller<sip:c@h>", "caller", "sip:c@h", ()),  # RFC 4475 3.1.1.6
    ("<sip:a@h;lr>;expires=60", None, "sip:a@h;lr", (("expires", "60"),)),
    ("sip:a@h;tag=x;lr", None, "sip:a@h", (("tag", "x"), ("lr", None))),
    ("sip:a@h ; tag = 5", None, "sip:a@h", (("tag", "5"),)),
    ('<sip:a@h>;+sip.instance="<urn:uuid:1>"', None, "sip:a@h", (("+sip.instance", '"<urn:uuid:1>"'),)),
    ("<tel:+15550100>", None, "tel:+15550100", ()),
])
def test_name_addr(text, display, uri, params):
    addr = parse_name_addr(text)
    assert (addr.display, str(addr.uri), addr.params) == (display, uri, params)


def test_name_addr_wildcard_and_str():
    assert parse_name_addr(" * ").wildcard
    addr = NameAddr(parse_uri("sip:a@h"), 'say "hi"', (("tag", "1"),))
    assert str(addr) == '"say \\"hi\\"" <sip:a@h>;tag=1'
    assert parse_name_addr(str(addr)) == addr
    assert quote_string("a\\b") == '"a\\\\b"'
    assert parse_name_addr("<sip:a@h>").with_param("tag", "9").tag == "9"


@pytest.mark.parametrize("text", [
    "Bell, Alexander <sip:a@h>",  # baddn
    '"Mr. J. User <sip:j@h>',  # quotbal
    '"Watson" < sip:t@h >',  # badaspec
    "sip:user@h?Route=%3Csip:x%3E",  # regbadct: headers need <>
    "<sip:a@h>;;",  # badinv01
    "<sip:a@h",
    '"x" y <sip:a@h>',
    "<sip:a@h>junk",
    "<sip:a@h>;tag=",
    "<sip:a@h>;ta g=1",
    "",
    '"trailing \\',
])
def test_bad_name_addr(text):
    with pytest.raises(SipSyntaxError):
        parse_name_addr(text)


def test_via_with_branch_received_rport():
    via = parse_via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;rport;received=10.0.0.1")
    assert (via.transport, via.host, via.port, via.branch) == ("UDP", "192.0.2.1", 5060, "z9hG4bK776")
    assert via.param("rport") == "" and via.param("received") == "10.0.0.1"
    assert via.param("maddr") is None and via.is_rfc3261
    assert str(via) == "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;rport;received=10.0.0.1"
    assert str(via.with_param("rport", "5070")).endswith(";received=10.0.0.1;rport=5070")


def test_via_lws_and_ipv6():
    via = parse_via("SIP  /  2.0 / tcp   [2001:db8::9:1] : 6050 ; branch = z9hG4bKx")
    assert (via.protocol, via.transport, via.host, via.port) == ("SIP/2.0", "TCP", "[2001:db8::9:1]", 6050)
    assert via.host_no_brackets == "2001:db8::9:1"
    assert parse_via("SIP/2.0/UDP [::1];received=[2001:db8::9:255]").param("received") == "[2001:db8::9:255]"
    assert parse_via("SIP/2.0/UDP [::1];received=2001:db8::9:255").param("received") == "2001:db8::9:255"


@pytest.mark.parametrize("text", [
    "SIP/2.0/UDP", "SIP/2.0 UDP host", "SIP/2.0/UDP host;branch", "SIP/2.0/UDP host;;",
    "SIP/2.0/UDP host:port", "SIP/2.0/UDP host;received=example.com",
    "SIP/2.0/UDP host;rport=x", "SIP/2.0/UDP host;ttl=300", "SIP/2.0/UDP 2001:db8::1",
    "SIP/2.0/UDP [2001:db8::1", "SIP/2.0/UDP host;received=[1:2]",
])
def test_bad_vias(text):
    with pytest.raises(SipSyntaxError):
        parse_via(text)


def test_branch_kinds():
    assert is_rfc3261_branch("z9hG4bK1") and not is_rfc3261_branch("z9hG4bK")
    assert not is_rfc3261_branch("390skdjuw") and not is_rfc3261_branch(None)


def test_ip_addresses():
    assert is_ip_address("192.0.2.1") and is_ip_address("::1") and is_ip_address("[::1]")
    assert not is_ip_address("example.com") and not is_ip_address("300.1.1.1")


def test_cseq_limits():
    assert parse_cseq("0009  INVITE") == (9, "INVITE")
    assert parse_cseq(f"{2**32 - 1} BYE") == (2**32 - 1, "BYE")
    for bad in (f"{2**32} BYE", "1", "-1 BYE", "1 INVITE x", "x INVITE", "\u00b2 BYE", "1 IN@VITE"):
        with pytest.raises(SipSyntaxError):
            parse_cseq(bad)
