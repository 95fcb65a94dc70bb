"""PcmSource.read_encoded on shared (read-only) prompts: whole frames handed out as they are.

A frozen prompt is encoded once per codec and cut once into its 160-octet frames; every call
playing it gets those same bytes objects (no slice per frame per call), and the frames are
still exactly ``encode(read_frame())`` in every case: loop points on and off the frame grid,
a short last frame, looping forever, a codec change mid-prompt, read_frame mixed in.
"""
from __future__ import annotations

import numpy as np
import pytest

from ivr.media.g711 import alaw_encode, ulaw_encode
from ivr.media.player import FRAME_SAMPLES, PcmSource


def _frozen(n: int, seed: int = 3) -> np.ndarray:
    samples = np.random.default_rng(seed).integers(-20000, 20000, n).astype(np.int16)
    samples.setflags(write=False)
    return samples


@pytest.mark.parametrize("n", [160, 800, 1000, 159, 161, 8000])
@pytest.mark.parametrize("loop", [0, 1, 3])
def test_frames_equal_the_encoded_read_frame_frames(n, loop):
    samples = _frozen(n)
    plain, encoded = PcmSource(samples, loop), PcmSource(samples, loop)
    rng = np.random.default_rng(n * 10 + loop)
    for i in range(400):
        encode = ulaw_encode if i < 150 or i > 250 else alaw_encode  # a codec change, and back
        expected = plain.read_frame()
        if rng.random() < 0.1:  # read_frame on the encoded source too: positions stay in step
            got = encoded.read_frame()
            assert (got is None) == (expected is None)
            if got is not None:
                assert np.array_equal(got, expected)
            continue
        payload = encoded.read_encoded(encode)
        if expected is None:
            assert payload is None
            break
        assert payload == encode(expected).tobytes()
        assert len(payload) == FRAME_SAMPLES
    else:
        assert loop == 0 or n * loop > 399 * FRAME_SAMPLES


def test_callers_of_a_frozen_prompt_share_its_frames():
    samples = _frozen(1600)
    a, b = PcmSource(samples, loop=0), PcmSource(samples, loop=0)
    for _ in range(25):  # more than one loop
        fa, fb = a.read_encoded(ulaw_encode), b.read_encoded(ulaw_encode)
        assert fa == fb and fa is fb  # one bytes object for every caller


def test_a_writable_array_is_not_cut_into_shared_frames():
    samples = np.arange(800, dtype=np.int16)  # writable: may change, so nothing is shared
    a, b = PcmSource(samples), PcmSource(samples)
    fa, fb = a.read_encoded(ulaw_encode), b.read_encoded(ulaw_encode)
    assert fa == fb and fa is not fb
