"""_parse_header_params' split fast path (no LWS, no quotes) answers exactly as the
character scanner does: the same parameters, or the same error (#17 item 3)."""
from hypothesis import given, settings, strategies as st

from ivr.sip.uri import SipSyntaxError, _parse_header_params, _scan_header_params

PIECES = ["a", "b", "tag", "branch", "rport", "received", "=", ";", ";", " ", "\t", '"',
          "[", "]", "::1", "2001:db8::1", "1", ".", "-", "z9hG4bK", "%", "\\", ":", ",",
          "@", "<", ">", "?", "/", "é", "\r", "\n", "~", "*"]


def outcome(parse, text):
    try:
        return "ok", parse(text)
    except SipSyntaxError as exc:
        return "error", str(exc)


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=10), st.booleans())
def test_fast_path_matches_the_scanner(pieces, lead):
    text = (";" if lead else "") + "".join(pieces)
    assert outcome(_parse_header_params, text) == outcome(_scan_header_params, text)


def test_common_headers_take_the_fast_path_and_keep_their_values():
    assert _parse_header_params(";branch=z9hG4bK-1;rport;received=[2001:db8::1]") == (
        ("branch", "z9hG4bK-1"), ("rport", None), ("received", "[2001:db8::1]"))
    assert _parse_header_params("") == ()
    assert _parse_header_params(' ; tag = "x y"') == (("tag", '"x y"'),)
