import numpy as np
import pytest

from ivr.media.player import FRAME_SAMPLES, PcmSource, SequenceSource, SilenceSource


def drain(src, limit=10000):
    frames = []
    while len(frames) < limit:
        f = src.read_frame()
        if f is None:
            return frames
        frames.append(f)
    return frames


def test_pcm_frames_and_padding():
    samples = np.arange(1, 401, dtype=np.int16)
    src = PcmSource(samples)
    assert src.frames_total == 3
    frames = drain(src)
    assert len(frames) == 3 and all(f.dtype == np.int16 and f.shape == (160,) for f in frames)
    assert np.array_equal(np.concatenate(frames)[:400], samples)
    assert np.all(frames[2][80:] == 0) and frames[2][79] == 400
    assert src.read_frame() is None and src.read_frame() is None


def test_pcm_loop_is_seamless():
    samples = np.arange(100, dtype=np.int16)
    frames = drain(PcmSource(samples, loop=3))
    assert len(frames) == 2
    flat = np.concatenate(frames)
    assert np.array_equal(flat[:300], np.tile(samples, 3))
    assert np.all(flat[300:] == 0)


def test_pcm_loop_forever():
    src = PcmSource(np.arange(50, dtype=np.int16), loop=0)
    assert src.frames_total is None
    frames = [src.read_frame() for _ in range(100)]
    flat = np.concatenate(frames)
    assert np.array_equal(flat, np.arange(16000) % 50)


def test_pcm_frames_are_copies():
    samples = np.zeros(320, dtype=np.int16)
    f = PcmSource(samples).read_frame()
    f[:] = 5
    assert samples.max() == 0


def test_pcm_input_checks():
    with pytest.raises(TypeError):
        PcmSource(np.zeros(10, dtype=np.float32))
    with pytest.raises(ValueError):
        PcmSource(np.zeros((2, 10), dtype=np.int16))
    with pytest.raises(ValueError):
        PcmSource(np.zeros(10, dtype=np.int16), loop=-1)
    assert drain(PcmSource(np.array([40000, -40000], dtype=np.int32)))[0][:2].tolist() == [32767, -32768]
    assert drain(PcmSource(np.zeros(0, dtype=np.int16), loop=0)) == []


def test_silence():
    assert len(drain(SilenceSource(1.0))) == 50
    assert len(drain(SilenceSource(0.03))) == 2
    assert len(drain(SilenceSource(0.02))) == 1
    assert drain(SilenceSource(0)) == []
    assert not np.any(drain(SilenceSource(0.1))[0])


def test_sequence():
    a = PcmSource(np.full(160, 7, dtype=np.int16))
    b = SilenceSource(0.04)
    c = PcmSource(np.full(10, 9, dtype=np.int16))
    frames = drain(SequenceSource([a, SilenceSource(0), b, c]))
    assert len(frames) == 4
    assert frames[0][0] == 7 and not frames[1].any() and not frames[2].any() and frames[3][9] == 9
    assert frames[3][10] == 0
    assert FRAME_SAMPLES == 160


def test_read_encoded_gives_the_encoded_read_frame_frames():
    from ivr.media.g711 import alaw_encode, ulaw_encode
    rng = np.random.default_rng(7)
    samples = rng.integers(-20000, 20000, 1000).astype(np.int16)   # not a multiple of 160
    for loop in (1, 3):
        for encode in (ulaw_encode, alaw_encode):
            plain, encoded = PcmSource(samples, loop), PcmSource(samples, loop)
            while True:
                frame, payload = plain.read_frame(), encoded.read_encoded(encode)
                if frame is None:
                    assert payload is None
                    break
                assert payload == encode(frame).tobytes()     # wraps and the padded end too


def test_frozen_prompts_are_encoded_once_for_every_caller():
    from ivr.media import player
    from ivr.media.g711 import ulaw_encode
    calls = []

    def counting(x):
        calls.append(len(x))
        return ulaw_encode(x)

    prompt = np.arange(800, dtype=np.int16)
    prompt.setflags(write=False)
    for _ in range(3):                      # three calls play the same cached prompt
        source = PcmSource(prompt)
        while source.read_encoded(counting) is not None:
            pass
    assert calls.count(800) == 1            # the prompt itself: encoded once
    assert (id(prompt), counting) in player._ENCODED
