"""CatchUpBuffer with packets longer than 20 ms: a 40 or 60 ms packet brings two or three
frames at once (``push(frame, burst)``), which is not a stall and must not be dropped."""
import numpy as np
import pytest

from ivr.media.player import CatchUpBuffer


def frame(n: int) -> np.ndarray:
    return np.full(160, n, dtype=np.int16)


@pytest.mark.parametrize("burst", [1, 2, 3])
@pytest.mark.parametrize("jitter", [False, True])
def test_long_packets_pass_whole_and_in_order(burst, jitter):
    # one packet of ``burst`` frames every ``burst`` reads; with jitter, a third of the
    # packets come one read (20 ms) late
    buf = CatchUpBuffer(max_waiting=2, settle_reads=10)
    rng = np.random.default_rng(burst)
    arrivals: dict[int, int] = {}
    for k in range(200):
        at = k * burst + (1 if jitter and rng.random() < 0.33 else 0)
        arrivals[at] = arrivals.get(at, 0) + 1
    pushed, played = 0, []
    for read in range(200 * burst):
        for _ in range(arrivals.get(read, 0) * burst):
            pushed += 1
            buf.push(frame(pushed), burst)
        played.append(int(buf.read_frame()[0]))
    heard = [n for n in played if n]  # 0: silence (an underrun)
    if not jitter:
        assert buf.dropped == 0 and buf.underruns == 0 and heard == list(range(1, pushed + 1))
    else:
        # a late packet costs one silent frame, and the delay it added is dropped later (as
        # with 20 ms packets): never more frames dropped than silence was played
        assert heard == sorted(set(heard)) and buf.dropped <= buf.underruns
        assert len(heard) + buf.dropped + len(buf) == pushed


def test_a_stall_is_still_caught_up_with_long_packets():
    buf = CatchUpBuffer(max_waiting=2, settle_reads=10)
    for i in range(12):  # four 60 ms packets held up, delivered at once
        buf.push(frame(i), 3)
    buf.read_frame()
    assert len(buf) == 3  # at most max_waiting + burst - 1 = 4 kept at the read, one played
    assert buf.dropped == 8


def test_back_to_20ms_packets_the_limit_returns_to_max_waiting():
    buf = CatchUpBuffer(max_waiting=2, settle_reads=10)
    for i in range(3):
        buf.push(frame(i), 3)
    buf.read_frame()
    for i in range(3, 9):  # a stall of 20 ms packets: six at once
        buf.push(frame(i), 1)
    buf.read_frame()
    assert len(buf) == 1 and buf.dropped == 6
