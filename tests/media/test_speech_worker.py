"""Speech recognition in real worker processes (ivr/media/asr_worker.py) through a call's
listener (ivr/call/speech.py): the result of a spoken word, and every way the recogniser
can fail ending in RecognizerError and a log line instead of a stuck gather."""
from __future__ import annotations

import numpy as np
from twisted.internet import defer, reactor, task
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from ivr.call.speech import SpeechListener
from ivr.media.asr_worker import RecognizerPool
from ivr.media.recognizer import RecognizerError
from tests.media.speech_corpus import padded, spoken, with_noise


class FakeRtp:
    def __init__(self):
        self.listeners = []

    def add_audio_listener(self, cb):
        self.listeners.append(cb)

    def remove_audio_listener(self, cb):
        if cb in self.listeners:
            self.listeners.remove(cb)


class FakeCall:
    call_id = "call-speech"

    def __init__(self):
        self.clock = reactor
        self.rtp = FakeRtp()
        self.events = []
        self.ended = defer.Deferred()

    def _ensure_rtp(self):
        return self.rtp

    def when_ended(self):
        return self.ended

    def log_event(self, event, **fields):
        self.events.append((event, fields))


def utterance(text="sales", snr=20):
    clean = spoken(text)
    return with_noise(padded(clean, 0.5, 1.0), snr, clean)


def feed(call, audio, packet=160):
    for i in range(0, len(audio), packet):
        for cb in list(call.rtp.listeners):
            cb(audio[i:i + packet])


def errors_logged(test):
    seen = []

    def observer(event):
        if event.get("log_level") is not None and event["log_level"].name in ("error", "critical"):
            from twisted.logger import formatEvent
            seen.append(formatEvent(event))
    globalLogPublisher.addObserver(observer)
    test.addCleanup(globalLogPublisher.removeObserver, observer)
    return seen


class SpeechWorkerTests(unittest.TestCase):
    timeout = 60

    def make_pool(self, **kw):
        pool = RecognizerPool(reactor, workers=1, **kw)
        self.addCleanup(pool.close)
        return pool

    @defer.inlineCallbacks
    def test_a_spoken_word_is_heard_in_a_worker(self):
        call = FakeCall()
        listener = SpeechListener(call, self.make_pool(), ["sales", "support", "operator"],
                                  speech_timeout=0.5)
        started = []
        listener.on_start = lambda: started.append(True)
        feed(call, utterance("support"), packet=240)  # 30 ms packets are cut into 20 ms
        result = yield listener.next_result()
        self.assertEqual(started, [True])
        self.assertEqual(result.text, "support")
        self.assertGreater(result.confidence, 0)
        self.assertTrue(0.3 < result.start < 0.7 < result.end, result)
        listener.close()
        self.assertEqual(call.rtp.listeners, [])

    @defer.inlineCallbacks
    def test_killed_worker_fails_the_utterance_with_a_log_line(self):
        logged = errors_logged(self)
        call = FakeCall()
        pool = self.make_pool()
        listener = SpeechListener(call, pool, ["sales"], speech_timeout=0.5)
        audio = utterance("sales")
        feed(call, audio[:8000])  # speech has started: an utterance is open in the worker
        self.assertTrue(listener.busy)
        worker = pool.workers[0]
        waiting = listener.next_result()
        yield task.deferLater(reactor, 0.5, lambda: None)
        worker.proto.transport.signalProcess("KILL")
        with self.assertRaises(RecognizerError):
            yield waiting
        self.assertIsNotNone(listener.failed)
        self.assertEqual(call.rtp.listeners, [])  # stopped listening
        self.assertTrue(any("fall back to DTMF" in line for line in logged), logged)
        self.assertEqual(call.events[-1][0], "speech_failed")
        self.flushLoggedErrors()
        # the next listener gets a new worker process
        again = SpeechListener(FakeCall(), pool, ["sales"], speech_timeout=0.5)
        feed(again.call, audio)
        result = yield again.next_result()
        self.assertEqual(result.text, "sales")
        self.assertEqual(pool.starts, 2)

    @defer.inlineCallbacks
    def test_missing_model_is_a_recogniser_error(self):
        logged = errors_logged(self)
        call = FakeCall()
        listener = SpeechListener(call, self.make_pool(model_dir=self.mktemp()), ["sales"],
                                  speech_timeout=0.5)
        waiting = listener.next_result()
        feed(call, utterance("sales"))
        with self.assertRaises(RecognizerError) as caught:
            yield waiting
        self.assertIn("speech model missing", str(caught.exception))
        self.assertTrue(any("speech model missing" in line for line in logged), logged)

    @defer.inlineCallbacks
    def test_worker_that_never_answers_times_out(self):
        call = FakeCall()
        # a "worker" that reads its input and never answers
        pool = self.make_pool(timeout=0.5)
        pool.python = "/bin/sh"
        import ivr.media.asr_worker as asr
        original = asr._Worker.ensure

        def ensure(worker):
            if worker.proto is None:
                proto = asr._WorkerProtocol(worker)
                reactor.spawnProcess(proto, "/bin/sh", ["/bin/sh", "-c", "cat >/dev/null"],
                                     childFDs={0: "w", 1: "r", 2: "r"})
                worker.proto = proto
                pool.live.add(proto)
                proto.ended.addBoth(lambda _: pool.live.discard(proto))
        asr._Worker.ensure = ensure
        self.addCleanup(setattr, asr._Worker, "ensure", original)
        listener = SpeechListener(call, pool, ["sales"], speech_timeout=0.3)
        waiting = listener.next_result()
        began = reactor.seconds()
        feed(call, utterance("sales"))
        with self.assertRaises(RecognizerError):
            yield waiting
        self.assertLess(reactor.seconds() - began, 3)
        self.flushLoggedErrors()

    @defer.inlineCallbacks
    def test_start_loads_the_model_in_every_worker_before_the_first_word(self):
        pool = RecognizerPool(reactor, workers=2)
        self.addCleanup(pool.close)
        ready = yield pool.start()
        self.assertEqual(ready, 2)
        self.assertEqual(pool.starts, 2)
        self.assertEqual(len(pool.live), 2)
        call = FakeCall()
        listener = SpeechListener(call, pool, ["sales", "support"], speech_timeout=0.5)
        feed(call, utterance("sales"))
        result = yield listener.next_result()
        self.assertEqual(result.text, "sales")
        self.assertEqual(pool.starts, 2)  # no process started for the word

    @defer.inlineCallbacks
    def test_start_with_a_missing_model_logs_and_counts_no_worker_ready(self):
        logged = errors_logged(self)
        pool = self.make_pool(model_dir=self.mktemp())
        ready = yield pool.start()
        self.assertEqual(ready, 0)
        self.assertTrue(any("speech model missing" in line for line in logged), logged)


def test_audio_goes_to_the_worker_in_batches_and_the_rest_with_the_end():
    # one pipe message per 20 ms frame was 2,500 writes/s for 50 callers (B9: p95 3.5 s)
    from types import SimpleNamespace
    from ivr.media.asr_worker import BATCH_SAMPLES, Utterance
    sent = []

    class Worker:
        pool = SimpleNamespace(reactor=task.Clock(), timeout=5.0)

        def send(self, header, payload=b""):
            sent.append((header["op"], len(payload)))

    u = Utterance(Worker(), 1)
    for _ in range(20):
        u.feed(np.zeros(160, np.int16))
    assert BATCH_SAMPLES == 1280
    assert sent == [("audio", 2560), ("audio", 2560)]
    u.finish()
    assert sent[2:] == [("audio", 4 * 320), ("end", 0)]
