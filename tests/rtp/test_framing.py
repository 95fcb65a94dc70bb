"""Reframer and Packetizer (ivr/rtp/framing.py): any packet time in, 20 ms frames out; 20 ms
frames in, packets of the negotiated time out.  Pure: no clock, no sockets."""
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.rtp.framing import FRAME, Packetizer, Reframer, frames_per_packet

U, A = "ulaw", "alaw"  # stand-ins for the decoders the session passes as keys


def _bytes(n: int, rng: random.Random) -> bytes:
    return bytes(rng.randrange(0, 255) for _ in range(n))


@pytest.mark.parametrize("ms", [10, 20, 30, 40, 50, 60])
def test_every_sample_comes_out_once_in_order_in_160_octet_frames(ms):
    rng = random.Random(ms)
    payloads = [_bytes(8 * ms, rng) for _ in range(25)]
    r = Reframer()
    frames = [f for p in payloads for f in r.feed(p, U, 0xFF)]
    assert all(len(f) == FRAME and key == U for f, key in frames)
    joined = b"".join(payloads)
    assert b"".join(f for f, _ in frames) == joined[:len(joined) - r.pending]
    assert r.pending == len(joined) % FRAME


def test_a_change_of_packet_time_mid_stream_loses_nothing():
    rng = random.Random(1)
    sizes = [240] * 5 + [80] * 7 + [320] * 3 + [480] * 2 + [160] * 4 + [400, 1, 159, 960]
    payloads = [_bytes(n, rng) for n in sizes]
    r = Reframer()
    out = b"".join(f for p in payloads for f, _ in r.feed(p, U, 0xFF))
    joined = b"".join(payloads)
    assert out + joined[len(out):] == joined and len(joined) - len(out) == r.pending < FRAME


@given(st.lists(st.integers(min_value=1, max_value=1200), max_size=40))
def test_any_sizes_every_sample_once(sizes):
    payloads = [bytes([i % 255]) * n for i, n in enumerate(sizes)]
    r = Reframer()
    out = b"".join(f for p in payloads for f, _ in r.feed(p, U, 0xFF))
    joined = b"".join(payloads)
    assert out == joined[:len(out)] and len(joined) - len(out) == r.pending < FRAME


def test_a_20ms_payload_passes_through_as_the_same_object():
    r = Reframer()
    p = bytes(range(160))
    assert r.feed(p, U, 0xFF)[0][0] is p


def test_marker_flushes_the_last_talkspurt_padded_with_its_silence():
    r = Reframer()
    assert [f for f, _ in r.feed(b"\x01" * 240, U, 0xFF)] == [b"\x01" * 160]
    out = r.feed(b"\x02" * 160, U, 0xFF, marker=True)
    assert [f for f, _ in out] == [b"\x01" * 80 + b"\xff" * 80, b"\x02" * 160]
    assert r.pending == 0


def test_a_codec_change_flushes_the_rest_with_the_old_codec():
    r = Reframer()
    r.feed(b"\x01" * 240, U, 0xFF)
    out = r.feed(b"\x02" * 240, A, 0xD5)
    assert out == [(b"\x01" * 80 + b"\xff" * 80, U), (b"\x02" * 160, A)]
    assert r.pending == 80


def test_frames_per_packet():
    assert [frames_per_packet(n) for n in (1, 80, 160, 161, 240, 320, 400, 480)] == \
        [1, 1, 1, 2, 2, 2, 3, 3]


@pytest.mark.parametrize("samples,ticks_with_packets", [
    (80, [1, 2, 3, 4, 5, 6]), (160, [1, 2, 3, 4, 5, 6]), (240, [2, 3, 5, 6]),
    (320, [2, 4, 6]), (480, [3, 6])])
def test_packetizer_sizes_timestamps_and_pacing(samples, ticks_with_packets):
    pk = Packetizer(samples)
    ts0 = 0xFFFFFF00  # wraps past 2**32
    sent = {}
    for tick in range(1, 7):
        frame = bytes([tick]) * FRAME
        out = pk.add((ts0 + FRAME * (tick - 1)) & 0xFFFFFFFF, frame, marker=tick == 1)
        if out:
            sent[tick] = out
    assert sorted(sent) == ticks_with_packets
    packets = [p for tick in sorted(sent) for p in sent[tick]]
    assert all(len(data) == samples for _, data, _ in packets)
    assert [ts for ts, _, _ in packets] == [(ts0 + samples * i) & 0xFFFFFFFF
                                           for i in range(len(packets))]
    assert [m for _, _, m in packets] == [True] + [False] * (len(packets) - 1)
    assert b"".join(d for _, d, _ in packets) == b"".join(bytes([t]) * FRAME for t in range(1, 7))
    assert (samples == 80) == (len(sent.get(1, ())) == 2)  # 10 ms: two packets per tick


def test_packetizer_sends_the_queue_short_when_the_timestamp_jumps():
    pk = Packetizer(240)
    assert pk.add(1000, b"\x01" * 160) == []
    out = pk.add(1000 + 480, b"\x02" * 160)  # a late tick: two periods later
    assert out == [(1000, b"\x01" * 160, False)]
    assert pk.add(1000 + 640, b"\x03" * 160) == [(1480, b"\x02" * 160 + b"\x03" * 80, False)]
    assert pk.flush() == [(1720, b"\x03" * 80, False)] and pk.flush() == []
