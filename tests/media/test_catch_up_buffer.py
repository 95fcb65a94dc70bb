"""CatchUpBuffer: live frames played out with a delay that returns to one frame after stalls."""
import numpy as np
import pytest

from ivr.media.player import CatchUpBuffer


def frame(n: int) -> np.ndarray:
    return np.full(160, n, dtype=np.int16)


def test_steady_stream_passes_whole_and_in_order():
    buf = CatchUpBuffer()
    out = []
    for i in range(200):
        buf.push(frame(i))
        out.append(int(buf.read_frame()[0]))
    assert out == list(range(200)) and buf.dropped == 0 and buf.underruns == 0


def test_a_burst_is_cut_to_max_waiting_then_the_standing_frame_goes_after_settle_reads():
    buf = CatchUpBuffer(max_waiting=2, settle_reads=10)
    for i in range(6):  # a stall: six frames arrive before one read
        buf.push(frame(i))
    waiting = []
    n = 6
    for _ in range(30):
        waiting.append(len(buf))
        buf.read_frame()
        buf.push(frame(n))
        n += 1
    # at once 2 left (4 dropped), one played; the standing extra frame goes at the 10th read
    assert buf.dropped == 5
    assert waiting[1:10] == [2] * 9 and waiting[11:] == [1] * 19


def test_jitter_alone_drops_nothing():
    # two packets in one period and none in the next (one came early, or the one before it
    # late), now and then, around a steady stream: nothing is dropped, nothing underruns
    buf = CatchUpBuffer(max_waiting=2, settle_reads=10)
    rng = np.random.default_rng(4)
    pushed, played, tick = 0, [], 0
    while tick < 1000:
        pattern = (2, 0) if rng.random() < 0.3 else (1,)
        for arrivals in pattern:
            for _ in range(arrivals):
                buf.push(frame(pushed))
                pushed += 1
            played.append(int(buf.read_frame()[0]))
            tick += 1
    assert buf.dropped == 0 and buf.underruns == 0 and played == list(range(len(played)))


def test_a_late_packet_costs_one_silent_frame_and_one_drop():
    buf = CatchUpBuffer(max_waiting=2, settle_reads=10)
    pushed = 0
    for arrivals in [1] * 20 + [0, 2] + [1] * 30:
        for _ in range(arrivals):
            buf.push(frame(pushed))
            pushed += 1
        buf.read_frame()
    assert buf.underruns == 1 and buf.dropped == 1 and len(buf) == 0


def test_empty_buffer_plays_silence_and_a_flood_is_bounded():
    buf = CatchUpBuffer(max_frames=8)
    assert not buf.read_frame().any() and buf.underruns == 1
    for i in range(1000):
        buf.push(frame(i))
    assert len(buf) == 8 and buf.dropped == 992
    assert int(buf.read_frame()[0]) == 998  # the newest two are kept at a read


@pytest.mark.parametrize("kwargs", [dict(max_waiting=0), dict(settle_reads=0), dict(max_waiting=5, max_frames=4)])
def test_bad_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        CatchUpBuffer(**kwargs)
