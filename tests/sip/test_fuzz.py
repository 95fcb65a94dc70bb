"""Property tests: mutated messages never crash the parser or the validator (STYLE rule 11).

Only SipParseError / SipSyntaxError may leave parse_datagram, check_request never raises,
and StreamParser only raises FramingError.
"""
from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.sip.message import (
    FramingError,
    Request,
    SipParseError,
    StreamParser,
    parse_datagram,
    serialize,
)
from ivr.sip.uri import SipSyntaxError, parse_name_addr, parse_uri, parse_via
from ivr.sip.validate import Rejection, check_request, should_accept_response

TORTURE = Path(__file__).resolve().parents[1] / "data" / "sip-torture"
DATA = Path(__file__).resolve().parents[1] / "data" / "sip"
SEEDS = [p.read_bytes() for p in sorted(DATA.glob("*.sip"))]
SEEDS += [p.read_bytes() for p in sorted((TORTURE / "rfc4475").glob("*.dat"))]
SEEDS += [p.read_bytes() for p in sorted((TORTURE / "rfc5118" / "wire").glob("*.dat"))]

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
INTERESTING = b"\r\n \t:;,<>\"\\@%[]?=/0123456789zZ\x00\xff"


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    return mutate_bytes(draw, data, draw(st.integers(1, 6)))


def mutate_bytes(draw, data: bytearray, operations: int) -> bytes:
    """``operations`` random edits of ``data``: flipped, inserted (interesting bytes among
    them), deleted or truncated bytes, a duplicated line, stray line ends."""
    for _ in range(operations):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate", "crlf"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.one_of(st.binary(max_size=8),
                                           st.sampled_from([bytes([b]) for b in INTERESTING])))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del data[pos:]
        elif kind == "duplicate":
            lines = bytes(data).split(b"\r\n")
            if len(lines) > 2:
                i = draw(st.integers(1, len(lines) - 1))
                lines.insert(i, lines[draw(st.integers(1, len(lines) - 1))])
                data = bytearray(b"\r\n".join(lines))
        else:
            data[pos:pos] = draw(st.sampled_from([b"\r\n", b"\r\n\r\n", b"\n", b"\r", b"\r\n "]))
    return bytes(data)


def _check(message) -> None:
    if isinstance(message, Request):
        result = check_request(message)
        assert result is None or isinstance(result, Rejection)
        if result is None:  # everything a UAS relies on really parses
            message.vias, message.from_, message.to, message.cseq, message.contacts
    else:
        assert isinstance(should_accept_response(message), bool)


@FUZZ
@given(mutated())
def test_parse_datagram_and_check_request_mutations(data):
    try:
        message = parse_datagram(data)
    except SipParseError as exc:
        assert exc.status in (None, 400, 505)
        if exc.request is not None:
            check_request(exc.request)  # a partial request is still safe to inspect
        return
    _check(message)
    again = parse_datagram(serialize(message))
    assert again.start_line() == message.start_line() and again.body == message.body


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(data):
    try:
        message = parse_datagram(data)
    except SipParseError:
        return
    _check(message)


@FUZZ
@given(mutated(), st.lists(st.integers(1, 64), min_size=1, max_size=40))
def test_stream_parser_mutations(data, sizes):
    parser = StreamParser()
    chunks, pos = [], 0
    for size in sizes:
        chunks.append(data[pos : pos + size])
        pos += size
    chunks.append(data[pos:])
    try:
        for chunk in chunks:
            for item in parser.feed(chunk):
                if isinstance(item, SipParseError) or item == "ping":
                    continue
                _check(item)
    except FramingError:
        pass


@FUZZ
@given(st.text(alphabet=st.sampled_from(list("sip:@;=<>\"\\ ,?&%[]/.:0123456789abcAZ*\t~")),
               max_size=60))
def test_grammar_parsers_raise_only_syntax_errors(text):
    for parse in (parse_uri, parse_name_addr, parse_via):
        try:
            parse(text)
        except SipSyntaxError:
            pass
