"""ivr/rtp/bencode.py: the codec of rtpengine's ng protocol, on fixed bytes."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

from ivr.rtp.bencode import MAX_DEPTH, BencodeError, decode, encode

# A real offer reply of rtpengine (10.5), as it comes after the cookie.
OFFER_REPLY = (b"d6:result2:ok3:sdp187:v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
               b"t=0 0\r\nm=audio 30000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
               b"a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\na=rtcp:30001\r\n"
               b"a=ptime:20\r\ne")


def test_the_four_types_on_fixed_bytes():
    assert encode(b"spam") == b"4:spam"
    assert encode("") == b"0:"
    assert encode(42) == b"i42e" and encode(-3) == b"i-3e" and encode(0) == b"i0e"
    assert encode(["spam", 1]) == b"l4:spami1ee"
    assert encode({"command": "ping"}) == b"d7:command4:pinge"
    assert decode(b"d6:result4:ponge") == {b"result": b"pong"}
    assert decode(b"li1ei-2e0:lee") == [1, -2, b"", []]


def test_keys_are_sorted_as_bytes():
    assert encode({"to-tag": "b", "call-id": "x", "flags": ["trust-address"],
                   "ICE": "remove"}) == (
        b"d3:ICE6:remove7:call-id1:x5:flagsl13:trust-addresse6:to-tag1:be")


def test_a_real_reply():
    assert decode(b"d3:sdp1:x6:result2:oke") == {b"sdp": b"x", b"result": b"ok"}  # any order
    reply = decode(OFFER_REPLY)
    assert reply[b"result"] == b"ok"
    assert reply[b"sdp"].startswith(b"v=0\r\n") and reply[b"sdp"].endswith(b"a=ptime:20\r\n")
    assert encode(reply) == OFFER_REPLY


@pytest.mark.parametrize("bad", [
    b"", b"i", b"i12", b"ie", b"i-e", b"i03e", b"i-0e", b"i1.5e", b"5:abc", b"-1:a", b"01:a",
    b"l", b"li1e", b"d", b"d3:abc", b"di1ei2ee", b"d1:ai1e1:ai2ee", b"x", b"i1ei2e",
    b"4:spamX", b"99999999999:a", b"l" * (MAX_DEPTH + 5) + b"e" * (MAX_DEPTH + 5),
])
def test_garbage_is_a_bencode_error(bad):
    with pytest.raises(BencodeError):
        decode(bad)


@pytest.mark.parametrize("bad", [True, 1.5, None, {1: 2}, {"a": 1, b"a": 2}, object()])
def test_what_cannot_be_encoded(bad):
    with pytest.raises(BencodeError):
        encode(bad)


values = st.recursive(
    st.binary(max_size=20) | st.integers(-2**63, 2**63 - 1),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.binary(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20)


@given(values)
def test_round_trip(value):
    assert decode(encode(value)) == value


@given(st.binary(max_size=60))
def test_any_bytes_decode_or_raise_bencode_error(data):
    try:
        decode(data)
    except BencodeError:
        pass


def test_the_codec_is_pure():
    code = ("import sys, json; import ivr.rtp.bencode; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('twisted', 'socket', 'select', 'asyncio'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
