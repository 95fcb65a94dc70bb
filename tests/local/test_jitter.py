import numpy as np
import pytest

from ivr.local.jitter import JitterBuffer


def frame(value, n=160):
    return np.full(n, value, dtype=np.int16)


def test_primes_before_playing_then_plays_in_order():
    jb = JitterBuffer(target_ms=40, max_ms=200)  # 320 samples
    jb.push(frame(1))
    assert not jb.read(160).any()  # 20 ms buffered < 40 ms target: silence, nothing consumed
    jb.push(frame(2))
    out = jb.read(240)
    assert list(out[:160]) == [1] * 160 and list(out[160:]) == [2] * 80
    assert list(jb.read(80)) == [2] * 80
    assert jb.stats().played == 320 and jb.stats().underruns == 0


def test_underrun_pads_with_silence_and_reprimes():
    jb = JitterBuffer(target_ms=20, max_ms=200)
    jb.push(frame(5))
    out = jb.read(200)
    assert list(out[:160]) == [5] * 160 and not out[160:].any()
    assert jb.stats().underruns == 1
    jb.push(frame(6, 80))
    assert not jb.read(80).any()  # priming again: 80 < 160
    jb.push(frame(7, 80))
    assert list(jb.read(160)) == [6] * 80 + [7] * 80


def test_overflow_drops_oldest_down_to_target():
    jb = JitterBuffer(target_ms=20, max_ms=60)  # 160 / 480 samples
    for v in range(1, 5):
        jb.push(frame(v))  # the 4th push makes 640 > 480
    stats = jb.stats()
    assert stats.buffered == 160 and stats.dropped == 480
    assert list(jb.read(160)) == [4] * 160


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError):
        JitterBuffer(target_ms=100, max_ms=50)
