"""``ivr say``: a prompt exactly as a caller hears it.

The text goes through the server's own TtsEngine (same disk cache, so the audio is the
prompt the server will play), comes out at 8 kHz, and is G.711 encoded and decoded with the
codec of the call, so the admin hears the companding noise too. Then it is either played on
the local sound device or written to a WAV file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from twisted.internet import defer, threads

from ..media import g711
from ..media.audio import RATE, save_wav
from . import audio_device

__all__ = ["caller_audio", "render_for_caller", "say", "voices_text"]


def caller_audio(samples: np.ndarray, codec: str = "PCMU") -> np.ndarray:
    """8 kHz int16 after one trip through the G.711 codec (what arrives at the caller)."""
    encode, decode = g711.encoder_for(codec), g711.decoder_for(codec)
    return decode(encode(np.asarray(samples, dtype=np.int16)))


def render_for_caller(engine, text: str, voice=None, language=None, rate=None,
                      codec: str = "PCMU") -> defer.Deferred:
    """Deferred 8 kHz int16: the rendered prompt after the G.711 round trip."""
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
