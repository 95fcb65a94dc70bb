import os
import shutil
import tempfile
import wave

import numpy as np
from twisted.internet import defer, reactor
from twisted.trial import unittest

from ivr.media.recorder import WavRecorder, write_wav


def read_wav(path):
    with wave.open(path, "rb") as w:
        params = (w.getnchannels(), w.getsampwidth(), w.getframerate())
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return params, data


class WavRecorderTests(unittest.TestCase):
    def mktemp(self):  # not trial's: that one writes under the working directory
        d = tempfile.mkdtemp(prefix="ivr-rec-")
        self.addCleanup(shutil.rmtree, d, True)
        return os.path.join(d, "rec")

    @defer.inlineCallbacks
    def test_records_frames_to_wav_in_a_thread(self):
        path = self.mktemp() + ".wav"
        rec = WavRecorder(path, max_seconds=10, reactor=reactor)
        frames = [np.full(160, i * 100 - 1000, dtype=np.int16) for i in range(20)]
        for f in frames:
            rec(f)
        rec(np.arange(240, dtype=np.int16))  # a 30 ms frame is fine too
        self.assertAlmostEqual(rec.seconds, (20 * 160 + 240) / 8000)
        seconds = yield rec.close()
        self.assertAlmostEqual(seconds, 0.43)
        params, data = read_wav(path)
        self.assertEqual(params, (1, 2, 8000))
        self.assertTrue(np.array_equal(data, np.concatenate(frames + [np.arange(240, dtype=np.int16)])))
        self.assertRaises(RuntimeError, rec.close)
        rec(frames[0])  # after close: ignored, no error

    @defer.inlineCallbacks
    def test_max_seconds_truncates_and_calls_on_full_once(self):
        path = self.mktemp() + ".wav"
        full = []
        rec = WavRecorder(path, max_seconds=0.05, reactor=reactor, on_full=lambda: full.append(1))
        for _ in range(5):
            rec(np.ones(160, dtype=np.int16))
        self.assertEqual(full, [1])
        self.assertTrue(rec.full)
        yield rec.close()
        _, data = read_wav(path)
        self.assertEqual(len(data), 400)

    @defer.inlineCallbacks
    def test_empty_recording(self):
        path = self.mktemp() + ".wav"
        seconds = yield WavRecorder(path, 5, reactor=reactor).close()
        self.assertEqual(seconds, 0.0)
        params, data = read_wav(path)
        self.assertEqual((params, len(data)), ((1, 2, 8000), 0))

    def test_fake_clock_writes_inline(self):
        from twisted.internet import task
        path = self.mktemp() + ".wav"
        rec = WavRecorder(path, 1, reactor=task.Clock())
        rec(np.full(160, 3, dtype=np.int16))
        d = rec.close()
        self.assertEqual(self.successResultOf(d), 0.02)
        self.assertEqual(read_wav(path)[1].tolist(), [3] * 160)

    def test_write_wav_and_bad_args(self):
        path = self.mktemp() + ".wav"
        write_wav(path, np.array([1, -2, 32767], dtype=np.int16))
        self.assertEqual(read_wav(path)[1].tolist(), [1, -2, 32767])
        self.assertRaises(ValueError, WavRecorder, path, 0)
