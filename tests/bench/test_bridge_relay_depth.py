"""The bridge's relay queue keeps latency low (found by B3: late ticks used to ratchet the
queue up to MAX_FRAMES, 120 ms, for the rest of the call)."""
import numpy as np

from ivr.call.bridge import MAX_FRAMES, TARGET_FRAMES, RelaySource


def frame(n: int) -> np.ndarray:
    return np.full(160, n, dtype=np.int16)


def test_late_ticks_do_not_accumulate_latency():
    src = RelaySource()
    sent = []
    n = 0
    for tick in range(200):
        arrivals = 2 if tick % 10 == 9 else 1  # every 10th tick is late: two frames arrived
        for _ in range(arrivals):
            src.push(frame(n))
            n += 1
        sent.append(int(src.read_frame()[0]))
        assert len(src.frames) <= TARGET_FRAMES - 1
    assert n - 1 - sent[-1] <= TARGET_FRAMES  # the newest frame is at most 40 ms behind
    assert src.dropped == 20 - 1 and src.underruns == 0  # one frame per late tick, bar the first


def test_steady_stream_is_relayed_whole_and_in_order():
    src = RelaySource()
    out = []
    for i in range(100):
        src.push(frame(i))
        out.append(int(src.read_frame()[0]))
    assert out == list(range(100)) and src.dropped == 0


def test_empty_queue_plays_silence_and_queue_is_bounded():
    src = RelaySource()
    assert not src.read_frame().any() and src.underruns == 1
    for i in range(20):
        src.push(frame(i))
    assert len(src.frames) == MAX_FRAMES
