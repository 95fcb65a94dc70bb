"""Test helper: record SECONDS of the default input device at 8 kHz to OUT.wav.

Prints "recording" once the stream runs. Used by the local-audio tests to hear what
``ivr say`` / ``ivr phone`` played into the PipeWire null sink (through its monitor).
"""
import sys
import time

import numpy as np
import sounddevice as sd

sys.path.insert(0, __file__.rsplit("/tests/", 1)[0])
from ivr.media.audio import save_wav  # noqa: E402

seconds, out = float(sys.argv[1]), sys.argv[2]
chunks = []
with sd.InputStream(samplerate=8000, channels=1, dtype="int16",
                    callback=lambda data, frames, t, status: chunks.append(data[:, 0].copy())):
    print("recording", flush=True)
    time.sleep(seconds)
save_wav(out, np.concatenate(chunks) if chunks else np.zeros(0, np.int16))
