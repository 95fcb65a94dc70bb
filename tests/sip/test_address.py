"""ivr/sip/address.py: a party's header value (or Request-URI, or bare user) parsed once."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from ivr.sip.address import InviteParties, PartyNumber, first_entry, parse_party, user_part


def party(value: str, region: str = "US") -> PartyNumber:
    p = parse_party(value, region)
    assert p is not None
    return p


@pytest.mark.parametrize("value,user,e164", [
    ("sip:%2B15551230000@example.com", "+15551230000", "+15551230000"),
    ("<sip:%61lice@example.com>", "alice", None),
    # An escaped ';' is part of the user, not the start of its parameters.
    ("<sip:a%3Bb@example.com>", "a;b", None),
    # RFC 4475 3.1.1.3 (esc02): the user part unescapes once, to a string with ':' and '@'.
    ("<sip:sip%3Auser%40example.com@company.com;other-param=summit>", "sip:user@example.com", None),
    # RFC 4475 3.1.1.9 (semiuri): ';' in the userinfo starts the user's parameters.
    ("<sip:user;par=u%40example.net@example.com>", "user", None),
    ("<sip:2125551234;phone-context=example.com@gw.example.com;user=phone>", "2125551234",
     "+12125551234"),
])
def test_escaped_user_parts(value, user, e164):
    p = party(value)
    assert (p.user, p.e164) == (user, e164)


def test_tel_uris():
    p = party('"Desk" <tel:+1-212-555-0100>;tag=9')
    assert (p.scheme, p.user, p.host, p.phone, p.e164, p.display) == (
        "tel", "+1-212-555-0100", None, True, "+12125550100", "Desk")
    # addr-spec: the ;phone-context reads as a header parameter, the number is still read
    p = party("tel:+1-800-555-0100;phone-context=+1")
    assert (p.user, p.phone, p.e164) == ("+1-800-555-0100", True, "+18005550100")


def test_a_local_tel_number_is_read_under_its_global_phone_context():
    assert party("<tel:555-0100;phone-context=+1-212>").e164 == "+12125550100"
    assert party("<sip:5550100;phone-context=+1212@gw;user=phone>").e164 == "+12125550100"
    # a domain context says nothing about the country: the region's plan applies
    assert party("<tel:2125550100;phone-context=example.com>", "US").e164 == "+12125550100"


def test_user_phone_and_digits_make_a_phone_number():
    p = party("<sip:+12125550100@gw.example.com;user=phone>")
    assert (p.phone, p.e164, p.host, p.scheme) == (True, "+12125550100", "gw.example.com", "sip")
    assert party("<sip:alice@example.com;user=phone>").phone is True
    assert party("<sip:alice@example.com>").phone is False
    assert party("<sip:2125550100@example.com>").phone is True   # digits
    assert party("<sip:alice@example.com>").e164 is None


@pytest.mark.parametrize("value,display", [
    ('"Bob \\"The Builder\\" Jr, III" <sip:bob@example.com>;tag=1', 'Bob "The Builder" Jr, III'),
    ('"" <sip:bob@example.com>', None),
    ("Alice  Smith <sip:alice@example.com>", "Alice Smith"),
    ('"back\\\\slash" <sip:bob@example.com>', "back\\slash"),
    ("<sip:bob@example.com>", None),
])
def test_display_names(value, display):
    p = party(value)
    assert p.display == display and p.user in ("bob", "alice")


def test_the_first_entry_of_a_list_is_the_party():
    value = '"A, B" <sip:+12125550100@t>;reason=unconditional, <sip:2001@pbx>'
    p = party(value)
    assert (p.display, p.user, p.raw) == ("A, B", "+12125550100",
                                          '"A, B" <sip:+12125550100@t>;reason=unconditional')
    assert first_entry(value) == p.raw


@pytest.mark.parametrize("value,user,host", [
    ("sip:alice@example.com;tag=1", "alice", "example.com"),       # addr-spec, no <>
    ("sips:echo@example.com:5061", "echo", "example.com"),
    ("<sip:example.com>", None, "example.com"),                      # no user part
    ("8005550100", "8005550100", None),                               # a bare user part
    ("1-800-555-0100", "1-800-555-0100", None),
    ("echo", "echo", None),
    ("<sip:+15551230000@example.com", "+15551230000", "example.com"),  # unterminated <
    ('Bad "display <sip:bob@example.com>', "bob", "example.com"),      # not a token
    ("example.com", None, "example.com"),                              # a bare host
])
def test_missing_brackets_and_sloppy_values(value, user, host):
    p = party(value)
    assert (p.user, p.host) == (user, host)


def test_empty_is_none_and_a_party_passes_through():
    assert parse_party(None) is None and parse_party("") is None and parse_party(" , ") is None
    p = party("<sip:611@example.com>")
    assert parse_party(p) is p
    assert user_part("sip:%2B1555@h") == "+1555" and user_part(None) is None


def test_e164_depends_on_the_region_of_national_digits():
    assert party("<sip:02079460000@gw>", "GB").e164 == "+442079460000"
    assert party("<sip:02079460000@gw>", "US").e164 is None
    assert party("<sip:+442079460000@gw>", "US").e164 == "+442079460000"
    assert party("<sip:+442079460000@gw>", "US").called == "+442079460000"
    assert party("<sip:echo@gw>").called == "echo"


def test_invite_parties_parse_every_header_once():
    headers = {"From": '"Ann" <sip:%2B12125550100@a.example>;tag=1',
               "To": "<sip:trunk@b.example>",
               "Diversion": "<sip:+18005550100@c.example>;reason=user-busy, <sip:x@y>",
               "P-Called-Party-ID": "   ",
               "Privacy": "id"}
    parties = InviteParties.parse("sip:trunk-account@10.0.0.1;transport=udp", headers)
    assert parties.request_uri.user == "trunk-account"
    assert parties.from_.e164 == "+12125550100" and parties.from_.display == "Ann"
    assert parties.p_called_party_id is None and parties.p_asserted_identity is None
    assert parties.privacy == "id"
    assert [(s, p.user if p else None) for s, p in parties.called_candidates()] == [
        ("request_uri", "trunk-account"), ("p_called_party_id", None), ("to", "trunk"),
        ("diversion", "+18005550100")]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from('<>"\\,;:@%=+ \t.-_aZ09#*sipteltel:sip:'), max_size=40)
       | st.text(max_size=40))
def test_any_text_parses_without_raising(value):
    p = parse_party(value)
    assert p is None or isinstance(p, PartyNumber)
