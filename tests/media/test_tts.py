"""TTS: real espeak-ng renders in one worker process, caches, failures and fallback."""

import os

import numpy as np
from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from ivr.media import tts
from ivr.media.audio import rms, tone
from ivr.media.speech_text import say_digits
from ivr.media.tts import (FALLBACK_TEXT, TtsEngine, TtsError, TtsWorkerProcess, Voice,
                           builtin_fallback, resolve_voice)


def sync_thread(fn, *args):
    return defer.maybeDeferred(fn, *args)


class FakeWorker:
    """Counts calls; answers with a tone, or with ``fail`` (an exception or 'silent')."""

    def __init__(self, fail=None):
        self.calls = []
        self.fail = fail

    def render(self, text, voice=None, language=None, rate=None):
        self.calls.append((text, voice, language, rate))
        if isinstance(self.fail, Exception):
            return defer.fail(self.fail)
        if self.fail == "silent":
            return defer.succeed(np.zeros(8000, np.int16))
        return defer.succeed(tone(300 + len(self.calls), 0.5))

    def list_voices(self):
        return defer.succeed([Voice("gmw/en-us", "English (America)", ("en-us",))])


class CountingWorker:
    """Wraps the real worker process and counts requests that reach it."""

    def __init__(self, worker):
        self.worker = worker
        self.calls = 0

    def render(self, *args):
        self.calls += 1
        return self.worker.render(*args)

    def list_voices(self):
        return self.worker.list_voices()

    def close(self):
        return self.worker.close()


def speechlike(audio, min_s, max_s):
    seconds = len(audio) / 8000
    return min_s <= seconds <= max_s and rms(audio) > 500


class RealEspeakTests(unittest.TestCase):
    """Against the real espeak-ng worker process (one per test, closed in cleanup)."""

    timeout = 60

    def setUp(self):
        self.cache_dir = self.mktemp()
        self.process = TtsWorkerProcess(reactor)
        self.worker = CountingWorker(self.process)
        self.addCleanup(self.process.close)
        self.engine = TtsEngine(self.cache_dir, reactor=reactor, worker=self.worker)

    @defer.inlineCallbacks
    def test_render_is_speech_of_plausible_duration(self):
        audio = yield self.engine.render("Welcome to the demo")
        self.assertEqual(audio.dtype, np.int16)
        self.assertTrue(speechlike(audio, 0.8, 4.0), (len(audio), rms(audio)))
        spectrum = np.abs(np.fft.rfft(audio.astype(float)))
        freqs = np.fft.rfftfreq(len(audio), 1 / 8000)
        voice_band = spectrum[(freqs > 100) & (freqs < 3400)].sum()
        self.assertGreater(voice_band / spectrum.sum(), 0.9)
        self.assertEqual(self.engine.metrics.misses, 1)
        self.assertGreater(self.engine.metrics.render_seconds, 0)

    @defer.inlineCallbacks
    def test_second_call_is_a_cache_hit_without_the_worker(self):
        first = yield self.engine.render("Press one for sales")
        self.assertEqual(self.worker.calls, 1)
        d = self.engine.render("Press one for sales")
        self.assertTrue(d.called)  # same tick: no worker, no thread
        second = yield d
        self.assertIs(second, first)
        self.assertIs(self.engine.cached("Press one for sales"), first)
        self.assertEqual(self.worker.calls, 1)
        self.assertEqual(self.process.requests, 1)
        self.assertEqual(self.engine.metrics.memory_hits, 2)

    @defer.inlineCallbacks
    def test_twenty_concurrent_renders_all_succeed_in_one_worker(self):
        texts = [f"Your queue position is {i}" for i in range(20)]
        results = yield defer.gatherResults([self.engine.render(t) for t in texts])
        self.assertEqual(len(results), 20)
        for audio in results:
            self.assertTrue(speechlike(audio, 0.8, 5.0))
        self.assertEqual(self.process.requests, 20)
        self.assertEqual(self.process.starts, 1)
        self.assertEqual(len({a.tobytes() for a in results}), 20)

    @defer.inlineCallbacks
    def test_same_text_requested_twice_at_once_renders_once(self):
        a, b = yield defer.gatherResults([self.engine.render("Hello"), self.engine.render("Hello")])
        self.assertIs(a, b)
        self.assertEqual(self.worker.calls, 1)

    @defer.inlineCallbacks
    def test_voice_language_and_rate_change_the_audio(self):
        base = yield self.engine.render("Thank you for calling")
        slow = yield self.engine.render("Thank you for calling", rate=100)
        fast = yield self.engine.render("Thank you for calling", rate=300)
        self.assertGreater(len(slow), len(base) * 1.4)
        self.assertLess(len(fast), len(base) * 0.8)
        french = yield self.engine.render("Merci de votre appel", language="fr")
        spanish = yield self.engine.render("Gracias por llamar", voice="roa/es")
        us = yield self.engine.render("Thank you for calling", voice="English (America)")
        for audio in (french, spanish, us):
            self.assertTrue(speechlike(audio, 0.5, 4.0))
        self.assertNotEqual(us.tobytes(), base.tobytes())  # en-us differs from default en-gb
        self.assertEqual(self.worker.calls, 6)

    @defer.inlineCallbacks
    def test_disk_cache_survives_a_new_engine(self):
        first = yield self.engine.render("Goodbye")
        fake = FakeWorker()
        again = TtsEngine(self.cache_dir, reactor=reactor, worker=fake, engine=self.engine.engine)
        self.assertIsNone(again.cached("Goodbye"))
        second = yield again.render("Goodbye")
        np.testing.assert_array_equal(second, first)
        self.assertEqual(fake.calls, [])
        self.assertEqual(again.metrics.disk_hits, 1)
        self.assertIs(again.cached("Goodbye"), second)

    @defer.inlineCallbacks
    def test_unknown_voice_fails_and_fallback_plays(self):
        with self.assertRaises(TtsError):
            yield self.engine.render("Hello", voice="no-such-voice")
        audio = yield self.engine.render_or_fallback("Hello", voice="no-such-voice")
        np.testing.assert_array_equal(audio, builtin_fallback())
        self.assertEqual(self.engine.metrics.failures, 2)
        self.assertEqual(self.engine.metrics.fallbacks, 1)

    @defer.inlineCallbacks
    def test_prerender_then_spoken_fallback(self):
        failures = yield self.engine.prerender(["Main menu", ("Press two", None, "en-us", 180)])
        self.assertEqual(failures, 0)
        self.assertIsNotNone(self.engine.cached("Main menu"))
        self.assertIsNotNone(self.engine.cached("Press two", None, "en-us", 180))
        spoken = self.engine.cached(FALLBACK_TEXT)
        self.assertTrue(speechlike(spoken, 0.5, 4.0))
        self.engine.worker = FakeWorker(fail=RuntimeError("engine exploded"))
        audio = yield self.engine.render_or_fallback("Something new")
        self.assertIs(audio, spoken)

    @defer.inlineCallbacks
    def test_worker_crash_fails_one_request_and_restarts(self):
        engine = TtsEngine(self.cache_dir, reactor=reactor, worker=self.worker, run_in_thread=sync_thread)
        yield engine.render("Warm up")
        d = engine.render("This request dies with the worker")
        self.assertIsNotNone(self.process._current)  # sent; the worker cannot answer in this tick
        self.process._proto.transport.signalProcess("KILL")
        with self.assertRaises(TtsError):
            yield d
        after = yield engine.render("Back again")
        self.assertTrue(speechlike(after, 0.4, 3.0))
        self.assertEqual(self.process.starts, 2)

    @defer.inlineCallbacks
    def test_timeout_kills_worker_and_next_request_works(self):
        self.process.timeout = 0.001  # startup alone takes longer
        with self.assertRaises(TtsError) as caught:
            yield self.engine.render("Too slow")
        self.assertIn("timed out", str(caught.exception))
        self.process.timeout = 15.0
        audio = yield self.engine.render("Fast enough")
        self.assertTrue(speechlike(audio, 0.4, 3.0))
        self.assertEqual(self.process.starts, 2)

    @defer.inlineCallbacks
    def test_list_voices(self):
        voices = yield self.engine.list_voices()
        ids = {v.id for v in voices}
        self.assertTrue({"gmw/en-us", "roa/fr", "roa/es"} <= ids)
        self.assertEqual(resolve_voice(voices, None, "en-us"), "gmw/en-us")
        self.assertEqual(resolve_voice(voices, None, "es"), "roa/es")
        again = yield self.engine.list_voices()
        self.assertEqual(again, voices)

    @defer.inlineCallbacks
    def test_digits_read_back_takes_a_second_per_digit_or_less(self):
        audio = yield self.engine.render(say_digits("5551234"))
        self.assertTrue(speechlike(audio, 2.0, 7.0), len(audio) / 8000)

    @defer.inlineCallbacks
    def test_real_disk_io_through_reactor_thread_pool(self):
        engine = TtsEngine(self.cache_dir, reactor=reactor, worker=self.worker, engine="x")
        audio = yield engine.render("Thread pool")
        files = [f for _, _, fs in os.walk(self.cache_dir) for f in fs]
        self.assertEqual(files, [engine.key("Thread pool") + ".wav"])
        self.assertTrue(speechlike(audio, 0.4, 3.0))


class EngineWithFakeWorkerTests(unittest.TestCase):
    def make(self, worker=None, **kw):
        self.worker = worker or FakeWorker()
        return TtsEngine(self.mktemp(), reactor=task.Clock(), worker=self.worker,
                         run_in_thread=sync_thread, engine="test-engine 1", **kw)

    def test_key_depends_on_every_parameter(self):
        engine = self.make()
        base = engine.key("Hello")
        self.assertEqual(base, engine.key("Hello", None, None, None))
        variants = {engine.key("Hello!"), engine.key("Hello", voice="roa/fr"),
                    engine.key("Hello", language="fr"), engine.key("Hello", rate=150),
                    TtsEngine(self.mktemp(), reactor=task.Clock(), worker=FakeWorker(),
                              run_in_thread=sync_thread, engine="test-engine 2").key("Hello")}
        self.assertEqual(len(variants | {base}), 6)
        self.assertEqual(len(base), 64)

    def test_engine_defaults_apply_to_requests_and_keys(self):
        engine = self.make(voice="gmw/en-us", rate=170)
        self.assertEqual(engine.key("Hi"), engine.key("Hi", "gmw/en-us", None, 170))
        self.successResultOf(engine.render("Hi"))
        self.assertEqual(self.worker.calls, [("Hi", "gmw/en-us", None, 170)])

    def test_failure_errbacks_with_tts_error_and_fallback_never_fails(self):
        engine = self.make(FakeWorker(fail=RuntimeError("boom")))
        self.failureResultOf(engine.render("Hi"), TtsError)
        audio = self.successResultOf(engine.render_or_fallback("Hi"))
        np.testing.assert_array_equal(audio, builtin_fallback())
        self.assertEqual(engine.metrics.failures, 2)
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_configured_fallback_is_preferred(self):
        beep = tone(1000, 0.2)
        engine = self.make(FakeWorker(fail=RuntimeError("boom")), fallback=beep)
        self.assertIs(self.successResultOf(engine.render_or_fallback("Hi")), beep)

    def test_silent_output_is_an_error_and_not_cached(self):
        engine = self.make(FakeWorker(fail="silent"))
        failure = self.failureResultOf(engine.render("Hi"), TtsError)
        self.assertIn("empty output", str(failure.value))
        self.assertIsNone(engine.cached("Hi"))
        self.failureResultOf(engine.render("Hi"), TtsError)
        self.assertEqual(len(self.worker.calls), 2)

    def test_bad_requests_fail_without_the_worker(self):
        engine = self.make()
        for text in ("", "   ", None, 42, "x" * (tts.MAX_TEXT + 1)):
            self.failureResultOf(engine.render(text), TtsError)
        self.failureResultOf(engine.render("Hi", rate="fast"), TtsError)
        self.assertEqual(self.worker.calls, [])
        self.assertIsNotNone(self.successResultOf(engine.render_or_fallback("")))

    def test_prerender_counts_failures(self):
        engine = self.make(FakeWorker(fail=RuntimeError("boom")))
        self.assertEqual(self.successResultOf(engine.prerender(["a", "b"], include_fallback=False)), 2)

    def test_memory_lru_is_bounded(self):
        engine = self.make(memory_bytes=3 * 8000)  # three 0.5 s prompts
        for i in range(5):
            self.successResultOf(engine.render(f"prompt {i}"))
        self.assertIsNone(engine.cached("prompt 0"))
        self.assertIsNotNone(engine.cached("prompt 4"))
        self.successResultOf(engine.render("prompt 0"))  # comes back from disk
        self.assertEqual(engine.metrics.disk_hits, 1)
        self.assertEqual(len(self.worker.calls), 5)


class ResolveVoiceTests(unittest.TestCase):
    VOICES = [Voice("gmw/en", "English (Great Britain)", ("en-gb",)),
              Voice("gmw/en-us", "English (America)", ("en-us",)),
              Voice("roa/fr", "French", ("fr-fr",)),
              Voice("roa/es", "Spanish (Spain)", ("es",))]

    def test_by_id_name_short_id_and_language(self):
        r = lambda v=None, l=None: resolve_voice(self.VOICES, v, l)
        self.assertEqual(r("gmw/en-us"), "gmw/en-us")
        self.assertEqual(r("English (America)"), "gmw/en-us")
        self.assertEqual(r("en-us"), "gmw/en-us")
        self.assertEqual(r("EN-US"), "gmw/en-us")
        self.assertEqual(r(None, "en_US"), "gmw/en-us")
        self.assertEqual(r(None, "fr"), "roa/fr")
        self.assertEqual(r(None, "fr-fr"), "roa/fr")
        self.assertEqual(r(None, "es"), "roa/es")
        self.assertEqual(r(None, "en"), "gmw/en")
        self.assertIsNone(r())
        self.assertRaises(TtsError, r, "klingon")
        self.assertRaises(TtsError, r, None, "tlh")

    def test_a_given_voice_decides_alone(self):
        r = lambda v=None, l=None: resolve_voice(self.VOICES, v, l)
        self.assertEqual(r("roa/fr", "en-us"), "roa/fr")
        self.assertEqual(r("en_US", "en"), "gmw/en-us")  # a language tag as the voice wins too
        # an unknown voice is an error, not the plan language's voice in disguise
        with self.assertRaises(TtsError) as caught:
            r("klingon", "en-us")
        self.assertIn("klingon", str(caught.exception))


class BrokenWorkerTests(unittest.TestCase):
    """The worker process misbehaves: the request fails, the call gets the fallback."""

    timeout = 30

    def engine_with(self, python):
        process = TtsWorkerProcess(reactor, timeout=10.0, python=python)
        self.addCleanup(process.close)
        return process, TtsEngine(self.mktemp(), reactor=reactor, worker=process,
                                  run_in_thread=sync_thread, engine="x")

    def fake_python(self, script):
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + script)
        os.chmod(path, 0o755)
        return path

    @defer.inlineCallbacks
    def test_missing_interpreter(self):
        process, engine = self.engine_with("/nonexistent/python3")
        with self.assertRaises(TtsError):
            yield engine.render("Hello")
        audio = yield engine.render_or_fallback("Hello")
        np.testing.assert_array_equal(audio, builtin_fallback())

    @defer.inlineCallbacks
    def test_garbage_on_stdout(self):
        process, engine = self.engine_with(self.fake_python(r"printf '\000\000\000\003abc'; cat >/dev/null"))
        with self.assertRaises(TtsError) as caught:
            yield engine.render("Hello")
        self.assertIn("garbage", str(caught.exception))
        self.assertEqual(process.starts, 1)
        with self.assertRaises(TtsError):  # a fresh worker, equally broken, equally contained
            yield engine.render("Hello again")
        self.assertEqual(process.starts, 2)

    @defer.inlineCallbacks
    def test_worker_exits_mid_request(self):
        process, engine = self.engine_with(self.fake_python("head -c 4 >/dev/null; exit 3"))
        with self.assertRaises(TtsError) as caught:
            yield engine.render("Hello")
        self.assertIn("died", str(caught.exception))

    @defer.inlineCallbacks
    def test_close_kills_a_worker_that_does_not_exit(self):
        process, engine = self.engine_with(self.fake_python("exec sleep 30"))
        pending = engine.render("Hello")
        started = reactor.seconds()
        yield process.close(grace=0.2)
        self.assertLess(reactor.seconds() - started, 5)
        with self.assertRaises(TtsError):
            yield pending
