"""The framing of the TTS and speech worker pipes (ivr/media/worker_frames.py)."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from ivr.media.worker_frames import FrameError, FrameReader, frame


@given(st.lists(st.tuples(st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
                          st.binary(max_size=50)), max_size=5),
       st.integers(min_value=1, max_value=40))
def test_frames_come_back_whole_however_the_bytes_are_split(messages, step):
    wire = b"".join(frame(h, p) for h, p in messages)
    reader, got = FrameReader(), []
    for i in range(0, len(wire), step):
        got.extend(reader.feed(wire[i:i + step]))
    assert [(h, p) for h, p in got] == [(dict(h, nbytes=len(p)), p) for h, p in messages]
    assert reader.buffer == b""


def test_frames_before_garbage_are_handed_out_then_the_garbage_raises():
    reader, got = FrameReader(), []
    with pytest.raises(FrameError):
        for item in reader.feed(frame({"ok": True}, b"ab") + b"\x00\x00\x00\x03xyz"):
            got.append(item)
    assert got == [({"ok": True, "nbytes": 2}, b"ab")] and reader.buffer == b""
