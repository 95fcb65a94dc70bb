"""``ivr say``: a prompt exactly as a caller hears it.

The text goes through the server's own TtsEngine (same disk cache, and renders that depend
on the request alone), with the voice, language and rate a call would use: the flags, else
the dialplan's ``settings`` (as the ``say`` verb applies them). It comes out at 8 kHz and
goes through the frames the RTP path sends (the prompt G.711-encoded once, its last frame
padded) and the caller's G.711 decode, so the samples are the ones the caller's phone
decodes, companding noise included. Then it is either played on the local sound device or
written to a WAV file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from twisted.internet import defer, threads

from ..dialplan.loader import load_dialplans
from ..dialplan.model import Settings
from ..media import g711
from ..media.audio import RATE, save_wav
from ..media.player import PcmSource
from . import audio_device

__all__ = ["PlanInvalid", "call_voice", "caller_audio", "plan_settings", "render_for_caller", "say",
           "voices_text"]


class PlanInvalid(Exception):
    """The dialplans do not load: the server would refuse them too."""

    def __init__(self, errors) -> None:
        super().__init__(f"{len(errors)} dialplan error(s)")
        self.errors = list(errors)


def plan_settings(dialplans) -> Settings:
    """The ``settings`` of the plan in ``dialplans`` (a directory or file), loaded and
    validated as the server loads it; PlanInvalid with file:line:col errors if it does not."""
    plan, errors = load_dialplans(dialplans)
    if plan is None or errors:
        raise PlanInvalid(errors or [f"{dialplans}: no dialplan"])
    return plan.settings


def call_voice(settings: Settings, voice=None, language=None, rate=None) -> tuple:
    """(voice, language, rate) as a call speaks a ``say`` with these fields: each one given
    wins, else the plan's default (the verbs' ``voice_args``)."""
    return (voice or settings.voice, language or settings.language, rate or settings.rate)


def caller_audio(samples: np.ndarray, codec: str = "PCMU") -> np.ndarray:
    """8 kHz int16 the caller decodes: the RTP path's frames (``PcmSource.read_encoded``,
    the last one padded to 20 ms) through the codec's decoder."""
    encode, decode = g711.encoder_for(codec), g711.decoder_for(codec)
    source = PcmSource(np.asarray(samples, dtype=np.int16))
    frames = []
    while (frame := source.read_encoded(encode)) is not None:
        frames.append(frame)
    return decode(b"".join(frames))


def render_for_caller(engine, text: str, voice=None, language=None, rate=None,
                      codec: str = "PCMU") -> defer.Deferred:
    """Deferred 8 kHz int16: the rendered prompt as the caller decodes it."""
    return engine.render(text, voice, language, rate).addCallback(caller_audio, codec)


@defer.inlineCallbacks
def say(reactor, engine, text: str, *, voice=None, language=None, rate=None, codec="PCMU",
        output: str | None = None, device: int | None = None):
    """Render and play (or save); fires with (samples, where) once done."""
    samples = yield render_for_caller(engine, text, voice, language, rate, codec)
    if output:
        yield threads.deferToThreadPool(reactor, reactor.getThreadPool(), save_wav, Path(output),
                                        samples, RATE)
        return samples, output
    yield threads.deferToThreadPool(reactor, reactor.getThreadPool(), audio_device.play,
                                    samples, device)
    return samples, f"device {device}"


def voices_text(voices) -> str:
    lines = [f"{v.id:<28} {v.name:<28} {', '.join(v.languages)}" for v in
             sorted(voices, key=lambda v: v.id)]
    return "\n".join(lines) if lines else "no voices"
