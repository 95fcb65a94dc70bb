"""espeak-ng through pyttsx3's ctypes binding: voices, the engine's identity, and a renderer
whose output depends on the request alone.

Blocking and process-bound: only the TTS worker process (``tts_worker.py``) renders.

Why every render runs in a forked child: libespeak-ng keeps synthesis state in process
globals that no API call resets. The pitch "flutter" index (``Flutter_ix``, a static in
wavegen.c's ``AdvanceParameters``) walks on through every render, so the same text came out
a few samples longer or shorter and with a different pitch wobble depending on what the
process had spoken before (seen: four renders of one sentence in a row, four different
results; identical once the voice's ``flutter`` is 0). The AGC gain, the roughness cycle
counter and ``rand()`` (breath and Klatt voices) persist the same way. So the worker
initialises espeak once, never synthesises itself, and forks a child per render: every
render starts from that same pristine state, which is also the state a fresh worker
starts from. The fork costs ~5 ms on a cache miss only; a crash inside espeak costs
the child, not the worker.
"""
from __future__ import annotations

import os
import signal
import struct
import subprocess
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Iterable

import numpy as np

from ivr.media.audio import RATE, resample, rms

# Bump whenever the rendering changes (flags, defaults, the fork): it invalidates every
# disk cache entry. 2: renders no longer depend on the worker's history (entries of
# format 1 were rendered with whatever state earlier renders left behind).
CACHE_FORMAT = "ivr-tts/2"
MIN_RMS = 50.0  # int16 units; espeak speech is in the thousands
DEFAULT_RATE = 175  # espeak-ng's own default, words per minute
RATE_RANGE = (80, 450)
CHILD_SECONDS = 20  # a render child still running after this is killed (SIGALRM)


class TtsError(Exception):
    """Rendering failed: bad request, engine error, empty output, worker crash or timeout."""


@dataclass(frozen=True)
class Voice:
    id: str
    name: str
    languages: tuple[str, ...]


def resolve_voice(voices: Iterable[Voice], voice: str | None, language: str | None) -> str | None:
    """The espeak voice id for a voice id/name/short id or a language tag; None = default.

    A voice, when given, decides alone: one that names no voice (nor a language, "en-us"
    or "fr" given as a voice) is an error, never silently replaced by ``language``'s voice.
    """
    voices = list(voices)
    if voice:
        want = voice.lower()
        for test in (lambda v: v.id == want, lambda v: v.name.lower() == want,
                     lambda v: v.id.rsplit("/", 1)[-1] == want):
            found = [v for v in voices if test(v)]
            if found:
                return found[0].id
        language = voice
    if language:
        want = language.lower().replace("_", "-")
        for test in (lambda v: want in (lang.lower() for lang in v.languages),
                     lambda v: v.id.rsplit("/", 1)[-1] == want,
                     lambda v: any(lang.lower().startswith(want + "-") for lang in v.languages)):
            found = [v for v in voices if test(v)]
            if found:
                return found[0].id
        raise TtsError(f"no voice for {voice or language!r}")
    return None


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def _espeak_version() -> str:
    try:
        return subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "espeak-ng unknown"


def data_stamp(data_dir) -> str:
    """A digest of the espeak-ng data files (names, sizes, mtimes): voices, dictionaries and
    phoneme tables change the audio without changing the library's version string."""
    root = Path(data_dir)
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        st = path.stat()
        entries.append(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}")
    return sha256("\n".join(entries).encode("utf-8", "surrogateescape")).hexdigest()[:16] if entries else "none"


def engine_id(espeak: str | None = None) -> str:
    """Everything besides the request (text, voice, language, rate) that changes the samples:
    our cache format and output rate, espeak-ng's version and data, pyttsx3 and soxr (the
    resampler to 8 kHz)."""
    espeak = _espeak_version() if espeak is None else espeak
    data = espeak.split("Data at:", 1)[1].strip() if "Data at:" in espeak else os.environ.get("ESPEAK_DATA_PATH")
    stamp = data_stamp(data) if data and Path(data).is_dir() else "unknown"
    return (f"{CACHE_FORMAT}; {RATE} Hz; {espeak}; data {stamp}; pyttsx3 {_package_version('pyttsx3')}; "
            f"soxr {_package_version('soxr')}")


def check_output(samples: np.ndarray) -> np.ndarray:
    if len(samples) < RATE // 20 or rms(samples) < MIN_RMS:
        raise TtsError(f"empty output ({len(samples)} samples, rms {rms(samples):.1f})")
    return samples


class EspeakRenderer:
    """Blocking espeak-ng renderer in synchronous mode. One per process; used by the worker.

    Uses pyttsx3's ctypes binding of libespeak-ng (``pyttsx3.drivers._espeak``) rather
    than ``Engine.save_to_file`` + ``runAndWait``: pyttsx3's espeak driver runs espeak in
    asynchronous retrieval mode and polls for the end, and back-to-back renders race. We
    measured, rendering the same sentence 180 times at three alternating rates, the rate of
    one request applied to another about two times in three, and occasional empty WAVs.
    AUDIO_OUTPUT_SYNCHRONOUS returns from ``Synth`` with all the audio delivered.

    ``render`` forks (see the module docstring): this process keeps the engine exactly as
    ``Initialize`` left it. Call it from a single-threaded process (the worker is one).
    """

    def __init__(self):
        import ctypes

        from pyttsx3.drivers import _espeak

        self._es = _espeak
        self._rate_hz = _espeak.Initialize(_espeak.AUDIO_OUTPUT_SYNCHRONOUS, 200)
        if self._rate_hz <= 0:
            raise TtsError("could not initialise espeak-ng")
        self._chunks: list[bytes] = []

        def on_audio(wav, numsamples, events):
            if wav and numsamples > 0:
                self._chunks.append(ctypes.string_at(wav, numsamples * 2))
            return 0
        _espeak.SetSynthCallback(on_audio)  # the binding keeps the ctypes callback alive
        self._voices = [Voice(v.identifier.decode().lower(), v.name.decode(),
                              (v.languages[1:].decode("utf-8", "ignore"),) if v.languages else ())
                        for v in _espeak.ListVoices(None)]
        current = _espeak.GetCurrentVoice()
        self._default_voice = (current.contents.identifier.decode().lower()
                               if current and current.contents.identifier else "gmw/en")
        self.forks = 0  # render children started (for tests)

    def voices(self) -> list[Voice]:
        return list(self._voices)

    def render(self, text: str, voice=None, language=None, rate=None) -> np.ndarray:
        """8 kHz int16 of ``text``: the same samples for the same request, always."""
        if not isinstance(text, str) or not text.strip():
            raise TtsError("empty text")
        voice_id = resolve_voice(self._voices, voice, language) or self._default_voice
        wpm = int(rate) if rate else DEFAULT_RATE
        if not RATE_RANGE[0] <= wpm <= RATE_RANGE[1]:
            raise TtsError(f"rate {wpm} words per minute is outside {RATE_RANGE[0]}..{RATE_RANGE[1]}")
        pcm = np.frombuffer(self._in_child(text, voice_id, wpm), "<i2")
        return check_output(resample(pcm, self._rate_hz))

    def _in_child(self, text: str, voice_id: str, wpm: int) -> bytes:
        """Run ``_synth`` in a forked child; its native-rate PCM, or TtsError."""
        read_end, write_end = os.pipe()
        try:
            pid = os.fork()
        except OSError as e:
            os.close(read_end)
            os.close(write_end)
            raise TtsError(f"cannot fork a render child: {e}") from e
        if pid == 0:  # the child: never returns
            self._child(read_end, write_end, text, voice_id, wpm)
        self.forks += 1
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            reply = pipe.read()
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            raise TtsError(f"espeak-ng render died of signal {os.WTERMSIG(status)}")
        if len(reply) < 5:
            raise TtsError(f"espeak-ng render ended without a result (exit status {os.waitstatus_to_exitcode(status)})")
        ok, size = struct.unpack(">?I", reply[:5])
        body = reply[5:5 + size]
        if not ok:
            raise TtsError(body.decode("utf-8", "replace"))
        return body

    def _child(self, read_end: int, write_end: int, text: str, voice_id: str, wpm: int):
        code = 1
        try:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(CHILD_SECONDS)  # a hung espeak must not outlive its request
            os.close(read_end)
            os.closerange(0, 2)  # the worker's request pipe: the parent alone reads it
            os.closerange(3, write_end)  # its reply pipe too, so only the worker holds it
            os.closerange(write_end + 1, 1 << 16)
            try:
                reply = struct.pack(">?", True) + self._synth_framed(text, voice_id, wpm)
            except TtsError as e:
                message = str(e).encode("utf-8", "replace")
                reply = struct.pack(">?I", False, len(message)) + message
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(reply)
            code = 0
        finally:
            os._exit(code)

    def _synth_framed(self, text: str, voice_id: str, wpm: int) -> bytes:
        pcm = self._synth(text, voice_id, wpm)
        return struct.pack(">I", len(pcm)) + pcm

    def _synth(self, text: str, voice_id: str, wpm: int) -> bytes:
        """Speak in THIS process (the child): native-rate little-endian int16."""
        es = self._es
        if es.SetVoiceByName(voice_id.encode()) != es.EE_OK:
            raise TtsError(f"espeak-ng cannot load voice {voice_id!r}")
        es.SetParameter(es.RATE, wpm, 0)
        self._chunks = []
        status = es.Synth(text, flags=es.CHARS_UTF8 | es.ENDPAUSE)
        if status != es.EE_OK:
            raise TtsError(f"espeak-ng Synth returned {status}")
        return b"".join(self._chunks)
