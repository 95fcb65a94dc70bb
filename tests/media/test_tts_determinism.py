"""One text + voice + settings always renders to the same samples, whatever the worker
rendered before and in whichever worker process."""

import numpy as np
from twisted.internet import defer, reactor
from twisted.trial import unittest

from ivr.media.tts import TtsWorkerProcess

A = ("Welcome to the demo. Press one for sales.", None, None, None)
OTHERS = [("Bonjour et bienvenue", "fr", None, 300),
          ("Something else entirely, spoken slowly", None, "en-gb", 120),
          ("And a third voice", "gmw/en-us", "en-us", 90)]


class RenderIsAFunctionOfItsRequest(unittest.TestCase):
    timeout = 60

    def worker(self):
        worker = TtsWorkerProcess(reactor)
        self.addCleanup(worker.close)
        return worker

    def assertSameSamples(self, a, b, what):
        self.assertEqual(len(a), len(b), what)
        self.assertTrue(np.array_equal(a, b), f"{what}: {int(np.count_nonzero(a != b))} samples differ")

    @defer.inlineCallbacks
    def test_history_and_worker_do_not_change_the_audio(self):
        used = self.worker()
        first = yield used.render(*A)
        others = []
        for request in OTHERS:
            others.append((yield used.render(*request)))
        again = yield used.render(*A)
        self.assertSameSamples(first, again, "A after other voices/rates/languages in the same worker")

        fresh = yield self.worker().render(*A)
        self.assertSameSamples(first, fresh, "A in a fresh worker")
        for request, audio in zip(OTHERS, others):  # each request as if it came first
            alone = yield self.worker().render(*request)
            self.assertSameSamples(audio, alone, f"{request} after A vs in a fresh worker")

    @defer.inlineCallbacks
    def test_same_request_twice_in_a_row(self):
        used = self.worker()
        first = yield used.render(*A)
        second = yield used.render(*A)
        self.assertSameSamples(first, second, "A twice in a row")


# A renderer in its own process (espeak is initialised once per process, and the test
# process must not fork itself): each broken render child fails one request, the next works.
CHILD_FAILURES = r'''
import os, signal, sys, time
from ivr.media import espeak
from ivr.media.espeak import EspeakRenderer, TtsError
espeak.CHILD_SECONDS = 1
r = EspeakRenderer()
good = r.render("Hello there")
synth = EspeakRenderer._synth
for name, broken in [("crash", lambda *a: os.kill(os.getpid(), signal.SIGSEGV)),
                     ("hang", lambda *a: time.sleep(30)),
                     ("exit", lambda *a: os._exit(3)),
                     ("error", lambda *a: (_ for _ in ()).throw(TtsError("engine said no")))]:
    EspeakRenderer._synth = broken
    try:
        r.render("Hello there")
        print(name, "rendered")
    except TtsError as e:
        print(name, "TtsError", e)
    EspeakRenderer._synth = synth
    print(name, "then", "same" if (r.render("Hello there") == good).all() else "different")
print("forks", r.forks)
'''


def test_a_broken_render_child_fails_its_request_and_the_next_render_is_unchanged():
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-c", CHILD_FAILURES], capture_output=True, text=True,
                       timeout=60, cwd=root)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines == ["crash TtsError espeak-ng render died of signal 11", "crash then same",
                     "hang TtsError espeak-ng render died of signal 14", "hang then same",
                     "exit TtsError espeak-ng render ended without a result (exit status 3)",
                     "exit then same",
                     "error TtsError engine said no", "error then same",
                     "forks 9"], r.stdout + r.stderr


def test_engine_id_covers_what_changes_the_samples_besides_the_request(tmp_path, monkeypatch):
    from ivr.media import espeak
    from ivr.media.audio import RATE
    data = tmp_path / "espeak-ng-data"
    (data / "voices" / "gmw").mkdir(parents=True)
    (data / "phondata").write_bytes(b"\x01" * 100)
    (data / "voices" / "gmw" / "en").write_text("name English\n")
    version = f"eSpeak NG text-to-speech: 1.51  Data at: {data}"
    first = espeak.engine_id(version)
    assert espeak.engine_id(version) == first  # stable: the same engine, the same keys
    assert espeak.CACHE_FORMAT in first and f"{RATE} Hz" in first and "1.51" in first
    seen = {first}

    (data / "voices" / "gmw" / "en").write_text("name English\npitch 90 140\n")  # a voice edited
    seen.add(espeak.engine_id(version))
    (data / "voices" / "gmw" / "en-us").write_text("name English (America)\n")  # a voice added
    seen.add(espeak.engine_id(version))
    seen.add(espeak.engine_id(version.replace("1.51", "1.52")))
    real = espeak._package_version
    monkeypatch.setattr(espeak, "_package_version", lambda name: "9.9" if name == "soxr" else real(name))
    seen.add(espeak.engine_id(version))  # another resampler
    assert len(seen) == 5

