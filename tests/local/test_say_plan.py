"""``ivr say`` gives the samples a caller receives from the server for the same text: the
plan's voice settings, the same renders, the RTP path's G.711 frames.

The server side runs in process: the plan loaded from the same directory, a FlowRunner
running a ``say`` on a real Call, the Call's TtsEngine (its own cache, its own worker) and
an RTP stand-in that takes the frames exactly as RtpSession.tick does
(``source.read_encoded(encoder_for(codec))``) and decodes them as the caller's phone does.
"""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import numpy as np
from twisted.internet import defer, reactor
from twisted.trial import unittest

from ivr.call.call import Call, MediaContext
from ivr.call.interface import CallerId
from ivr.dialplan.loader import load_dialplans
from ivr.dialplan.runner import FlowRunner
from ivr.local.say import caller_audio
from ivr.media import g711
from ivr.media.audio import load_wav
from ivr.media.tts import TtsEngine

from .conftest import ROOT, base_env, ivr

TEXT = "Thank you for calling. Press one for sales, or two for support."


class FakeSession:
    call_id = "say-plan-test"
    listener = None

    def bye(self, reason=None):
        pass

    def reject(self, *args, **kwargs):
        pass


class WireRtp:
    """Takes a prompt's frames as RtpSession.tick sends them; the caller decodes them."""

    def __init__(self, codec: str):
        self.encode, self.decode = g711.encoder_for(codec), g711.decoder_for(codec)
        self.payloads: list[bytes] = []

    def play(self, source):
        while (payload := source.read_encoded(self.encode)) is not None:
            assert len(payload) == 160
            self.payloads.append(payload)
        return defer.succeed(None)

    def heard(self) -> np.ndarray:
        return self.decode(b"".join(self.payloads))

    def stop_playback(self, reason):
        pass

    def stats(self):
        return {}

    def close(self):
        pass


def plan_dir(tmp: Path, settings: str | None) -> Path:
    """The bundled dialplans (or only ``settings``) plus a flow that says TEXT."""
    d = tmp / "dialplans"
    if settings is None:
        shutil.copytree(ROOT / "dialplans", d)
    else:
        d.mkdir(parents=True)
        (d / "settings.yaml").write_text(textwrap.dedent(settings))
    (d / "zz_say_test.yaml").write_text(f'flows:\n  say_test:\n    - say: "{TEXT}"\n')
    return d


class SayIsWhatTheCallerHears(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def server_heard(self, plans: Path, codec: str) -> np.ndarray:
        plan, errors = load_dialplans(plans)
        self.assertEqual(errors, [])
        engine = TtsEngine(Path(self.mktemp()) / "cache", reactor=reactor)
        self.addCleanup(engine.close)
        ctx = MediaContext(reactor=reactor, media_clock=None, ports=None, advertise="127.0.0.1",
                           bind_host="127.0.0.1", tts=engine)
        call = Call(ctx, FakeSession(), CallerId("+12125551234", "A", "<sip:a@x>"), "+18005550100")
        call.answered = True
        call.rtp = rtp = WireRtp(codec)
        reason = yield FlowRunner(plan, call).run("say_test")
        self.assertEqual(reason, "completed")
        self.assertEqual(engine.metrics.fallbacks, 0)
        return rtp.heard()

    def ivr_say(self, plans: Path | None, codec: str, *extra) -> np.ndarray:
        out = Path(self.mktemp() + ".wav")
        args = ["say", TEXT, "--output", str(out), "--codec", codec, "--data", self.mktemp(), *extra]
        if plans is not None:
            args += ["--dialplans", str(plans)]
        r = ivr(args, base_env())
        self.assertEqual(r.returncode, 0, r.stderr)
        return load_wav(out)

    def assertSameSamples(self, a, b):
        self.assertEqual(len(a), len(b))
        self.assertTrue(np.array_equal(a, b), f"{int(np.count_nonzero(a != b))} samples differ")

    @defer.inlineCallbacks
    def test_bundled_dialplans_default(self):
        """`ivr say` from the project directory reads ./dialplans (language en-us) by default."""
        server = yield self.server_heard(plan_dir(Path(self.mktemp()), None), "PCMU")
        said = self.ivr_say(None, "PCMU")  # cwd is the project root: ./dialplans
        self.assertSameSamples(said, server)
        plain = self.ivr_say(None, "PCMU", "--language", "en")  # a flag overrides the plan
        self.assertFalse(len(plain) == len(server) and np.array_equal(plain, server))

    @defer.inlineCallbacks
    def test_plan_voice_and_rate_over_a_law(self):
        plans = plan_dir(Path(self.mktemp()), """\
            settings:
              voice: en-gb
              language: en-us
              rate: 140
            """)
        server = yield self.server_heard(plans, "PCMA")
        said = self.ivr_say(plans, "PCMA")
        self.assertSameSamples(said, server)
        self.assertEqual(len(said) % 160, 0)  # whole 20 ms frames, the last one padded as sent
        self.assertTrue(np.array_equal(caller_audio(said, "PCMA"), said))


def test_a_plan_the_server_would_refuse_is_refused_with_its_errors(tmp_path):
    bad = tmp_path / "plans"
    bad.mkdir()
    (bad / "settings.yaml").write_text("settings:\n  language: en-us\n  rate: fast\n")
    out = tmp_path / "x.wav"
    r = ivr(["say", "hello", "--output", str(out), "--dialplans", str(bad)], base_env())
    assert r.returncode == 2 and f"{bad / 'settings.yaml'}:3:9:" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not out.exists()
    r = ivr(["say", "hello", "--output", str(out), "--dialplans", str(tmp_path / "none")], base_env())
    assert r.returncode == 2 and "no dialplans at" in r.stderr and not out.exists(), r.stderr
