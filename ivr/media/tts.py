"""Text-to-speech: espeak-ng through pyttsx3 in ONE separate worker process.

Why a process and not a thread: pyttsx3/libespeak-ng is not thread-safe (concurrent
renders crash the process with a double free), espeak can be initialised only once per
process, and its C code runs inside our address space. In a child process a crash or a
hang costs one prompt (the request errbacks with TtsError, the worker is killed and
restarted on the next request) instead of every call on the server. Rendering a short
prompt takes ~10-20 ms, so one worker fed one request at a time is plenty; the IPC adds
well under a millisecond. The worker speaks a tiny framed protocol on stdin/stdout
(4-byte length + JSON header [+ raw int16 payload]) and is driven by the reactor with
``spawnProcess``: no threads in the parent.

``TtsEngine`` adds the caches in front: an in-memory LRU (``cached()`` is a same-tick,
memory-only lookup) and a disk cache of 8 kHz WAVs keyed by sha256 of (text, voice,
language, rate, engine id). Disk reads and writes run through ``run_in_thread``.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from twisted.internet import defer, protocol
from twisted.logger import Logger

from ivr.media.audio import (RATE, ArrayLru, AudioFormatError, frozen, load_wav, resample, rms, save_wav,
                             silence, tone)

CACHE_FORMAT = "ivr-tts/1"
FALLBACK_TEXT = "Sorry, please hold."
MAX_TEXT = 5000
MIN_RMS = 50.0  # int16 units; espeak speech is in the thousands

log = Logger(namespace="ivr.media.tts")


class TtsError(Exception):
    """Rendering failed: bad request, engine error, empty output, worker crash or timeout."""


@dataclass(frozen=True)
class Voice:
    id: str
    name: str
    languages: tuple[str, ...]


def resolve_voice(voices: Iterable[Voice], voice: str | None, language: str | None) -> str | None:
    """The espeak voice id for a voice id/name/short id or a language tag; None = default."""
    voices = list(voices)
    if voice:
        want = voice.lower()
        for test in (lambda v: v.id == want, lambda v: v.name.lower() == want,
                     lambda v: v.id.rsplit("/", 1)[-1] == want):
            found = [v for v in voices if test(v)]
            if found:
                return found[0].id
        if not language:
            language = voice  # "en-us" or "fr" given as a voice
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


def engine_id() -> str:
    """Versions that change the audio: espeak-ng, pyttsx3 and our cache format."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        espeak = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        espeak = "espeak-ng unknown"
    try:
        ptt = version("pyttsx3")
    except PackageNotFoundError:
        ptt = "unknown"
    return f"{CACHE_FORMAT}; {espeak}; pyttsx3 {ptt}"


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
        self._default_rate = 175  # espeak-ng's own default, words per minute

    def voices(self) -> list[Voice]:
        return list(self._voices)

    def render(self, text: str, voice=None, language=None, rate=None) -> np.ndarray:
        if not isinstance(text, str) or not text.strip():
            raise TtsError("empty text")
        es = self._es
        voice_id = resolve_voice(self._voices, voice, language) or self._default_voice
        if es.SetVoiceByName(voice_id.encode()) != es.EE_OK:
            raise TtsError(f"espeak-ng cannot load voice {voice_id!r}")
        wpm = int(rate) if rate else self._default_rate
        if not 80 <= wpm <= 450:
            raise TtsError(f"rate {wpm} words per minute is outside 80..450")
        es.SetParameter(es.RATE, wpm, 0)
        self._chunks = []
        status = es.Synth(text, flags=es.CHARS_UTF8 | es.ENDPAUSE)
        if status != es.EE_OK:
            raise TtsError(f"espeak-ng Synth returned {status}")
        pcm = np.frombuffer(b"".join(self._chunks), "<i2")
        self._chunks = []
        return check_output(resample(pcm, self._rate_hz))


# ---- the worker process ------------------------------------------------------------

def _frame(header: dict, payload: bytes = b"") -> bytes:
    head = json.dumps(dict(header, nbytes=len(payload))).encode()
    return struct.pack(">I", len(head)) + head + payload


def worker_main() -> None:
    """Serve render requests on stdin/stdout until stdin closes (run with --worker)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # nothing the libraries print may corrupt the reply stream
    stdin = sys.stdin.buffer
    renderer = EspeakRenderer()
    while True:
        size = stdin.read(4)
        if len(size) < 4:
            return
        req = json.loads(stdin.read(struct.unpack(">I", size)[0]))
        try:
            if req["op"] == "voices":
                reply = _frame({"ok": True, "voices": [list(v.__dict__.values()) for v in renderer.voices()]})
            else:
                pcm = renderer.render(req["text"], req.get("voice"), req.get("language"), req.get("rate"))
                reply = _frame({"ok": True}, pcm.astype("<i2").tobytes())
        except Exception as e:  # every failure goes back to the parent as a message
            reply = _frame({"ok": False, "error": str(e) if isinstance(e, TtsError) else f"{type(e).__name__}: {e}"})
        out.write(reply)
        out.flush()


class _WorkerProtocol(protocol.ProcessProtocol):
    def __init__(self, owner: "TtsWorkerProcess"):
        self.owner = owner
        self.buffer = b""
        self.ended = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 4:
            hlen = struct.unpack(">I", self.buffer[:4])[0]
            if len(self.buffer) < 4 + hlen:
                return
            try:
                header = json.loads(self.buffer[4:4 + hlen])
                end = 4 + hlen + int(header["nbytes"])
            except (ValueError, KeyError, TypeError) as e:
                self.buffer = b""
                self.owner._garbled(self, e)
                return
            if len(self.buffer) < end:
                return
            payload, self.buffer = self.buffer[4 + hlen:end], self.buffer[end:]
            self.owner._reply(self, header, payload)

    def errReceived(self, data: bytes) -> None:
        log.warn("tts worker: {text}", text=data.decode("utf-8", "replace").rstrip())

    def processEnded(self, reason) -> None:
        self.owner._ended(self, reason)
        self.ended.callback(None)


class TtsWorkerProcess:
    """One espeak worker process; requests are sent one at a time in FIFO order."""

    def __init__(self, reactor, timeout: float = 15.0, python: str = sys.executable):
        self._reactor = reactor
        self.timeout = timeout
        self._python = python
        self._proto: _WorkerProtocol | None = None
        self._queue: deque = deque()
        self._current = None  # (request, deferred, timeout call)
        self._live: set[_WorkerProtocol] = set()  # started and not yet ended (incl. killed)
        self.requests = 0  # requests sent to the worker process (for tests and metrics)
        self.starts = 0

    def render(self, text, voice=None, language=None, rate=None) -> defer.Deferred:
        d = self._submit({"op": "render", "text": text, "voice": voice, "language": language, "rate": rate})
        return d.addCallback(lambda pcm: np.frombuffer(pcm, "<i2").astype(np.int16))

    def list_voices(self) -> defer.Deferred:
        return self._submit({"op": "voices"})

    def _submit(self, req: dict) -> defer.Deferred:
        d = defer.Deferred()
        self._queue.append((req, d))
        self._next()
        return d

    def _start(self) -> None:
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        proto = _WorkerProtocol(self)
        self.starts += 1
        self._reactor.spawnProcess(proto, self._python, [self._python, "-m", "ivr.media.tts", "--worker"],
                                   env=env, childFDs={0: "w", 1: "r", 2: "r"})
        self._proto = proto
        self._live.add(proto)

    def _next(self) -> None:
        if self._current is not None or not self._queue:
            return
        if self._proto is None:
            try:
                self._start()
            except Exception as e:  # cannot spawn: fail what is waiting rather than hang
                waiting, self._queue = list(self._queue), deque()
                for _, d in waiting:
                    d.errback(TtsError(f"cannot start tts worker: {e}"))
                return
        req, d = self._queue.popleft()
        timer = self._reactor.callLater(self.timeout, self._timed_out, self._proto)
        self._current = (req, d, timer)
        self.requests += 1
        body = json.dumps(req).encode()
        self._proto.transport.write(struct.pack(">I", len(body)) + body)

    def _finish(self, outcome) -> None:
        req, d, timer = self._current
        self._current = None
        if timer.active():
            timer.cancel()
        self._next()  # queue the next request before the callbacks run
        if isinstance(outcome, Exception):
            d.errback(outcome)
        else:
            d.callback(outcome)

    def _reply(self, proto, header: dict, payload: bytes) -> None:
        if proto is not self._proto or self._current is None:
            return
        if not header.get("ok"):
            self._finish(TtsError(header.get("error", "worker error")))
        elif "voices" in header:
            self._finish([Voice(i, n, tuple(langs)) for i, n, langs in header["voices"]])
        else:
            self._finish(payload)

    def _timed_out(self, proto) -> None:
        if proto is self._proto and self._current is not None:
            self._kill()
            self._finish(TtsError(f"tts worker timed out after {self.timeout} s"))

    def _garbled(self, proto, error) -> None:
        if proto is self._proto:
            log.error("tts worker sent garbage ({error}); restarting it", error=error)
            self._kill()
            if self._current is not None:
                self._finish(TtsError(f"tts worker sent garbage: {error}"))

    def _ended(self, proto, reason) -> None:
        self._live.discard(proto)
        if proto is not self._proto:
            return
        self._proto = None
        if self._current is not None:
            log.error("tts worker died: {reason}", reason=reason.getErrorMessage())
            self._finish(TtsError(f"tts worker died: {reason.getErrorMessage()}"))

    def _kill(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None:
            self._kill_one(proto)

    @staticmethod
    def _kill_one(proto) -> None:
        if proto.transport is not None:
            try:
                proto.transport.signalProcess("KILL")
            except Exception:  # already gone
                pass
            proto.transport.loseConnection()  # and close our pipe ends, in case a grandchild holds them

    def close(self, grace: float = 5.0) -> defer.Deferred:
        """Stop the worker (killed after ``grace`` s); fires when every worker process has exited."""
        if self._proto is not None:
            self._proto.transport.closeStdin()  # the worker exits on EOF
        waits = [p.ended for p in self._live]
        if not waits:
            return defer.succeed(None)
        stuck = self._reactor.callLater(grace, lambda: [self._kill_one(p) for p in list(self._live)])

        def exited(_):
            if stuck.active():
                stuck.cancel()
        return defer.gatherResults(waits).addCallback(exited)


# ---- the engine with its caches ----------------------------------------------------

@dataclass
class TtsMetrics:
    memory_hits: int = 0
    disk_hits: int = 0
    misses: int = 0  # rendered by the worker
    failures: int = 0
    fallbacks: int = 0
    render_seconds: float = 0.0

    def snapshot(self) -> dict:
        return dict(self.__dict__)


def builtin_fallback() -> np.ndarray:
    """Silence and a soft double beep: what a caller hears when nothing else is available."""
    return frozen(np.concatenate([silence(0.2), tone(660, 0.15), silence(0.1), tone(660, 0.15), silence(0.3)]))


class TtsEngine:
    """Render text to 8 kHz int16 with an in-memory LRU and a disk cache in front of a worker.

    ``worker`` needs ``render(text, voice, language, rate) -> Deferred[np.ndarray]`` and
    ``list_voices() -> Deferred[list[Voice]]`` (default: a ``TtsWorkerProcess``).
    ``run_in_thread(fn, *args) -> Deferred`` runs the disk I/O (default: reactor pool).
    """

    def __init__(self, cache_dir, *, reactor=None, worker=None, run_in_thread: Callable | None = None,
                 engine: str | None = None, voice: str | None = None, language: str | None = None,
                 rate: int | None = None, fallback: np.ndarray | None = None,
                 memory_bytes: int = 32 * 1024 * 1024):
        if reactor is None:
            from twisted.internet import reactor  # only the entry point should rely on this
        self._reactor = reactor
        self.cache_dir = Path(cache_dir)
        self.worker = worker if worker is not None else TtsWorkerProcess(reactor)
        if run_in_thread is None:
            from ivr.media.prompts import default_run_in_thread
            run_in_thread = default_run_in_thread(reactor)
        self._run_in_thread = run_in_thread
        self.engine = engine if engine is not None else engine_id()
        self.defaults = (voice, language, rate)
        self._fallback = fallback
        self._memory = ArrayLru(memory_bytes)
        self._inflight: dict[str, list[defer.Deferred]] = {}
        self._voices: list[Voice] | None = None
        self.metrics = TtsMetrics()

    def _params(self, voice, language, rate):
        dv, dl, dr = self.defaults
        return (voice if voice is not None else dv, language if language is not None else dl,
                int(rate) if rate is not None else dr)

    def key(self, text: str, voice=None, language=None, rate=None) -> str:
        params = [text, *self._params(voice, language, rate), self.engine]
        return hashlib.sha256(json.dumps(params, ensure_ascii=False).encode()).hexdigest()

    def _disk_path(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.wav"

    def cached(self, text: str, voice=None, language=None, rate=None) -> np.ndarray | None:
        """Memory-only, same-tick lookup (no I/O): the audio if already rendered or loaded."""
        found = self._memory.get(self.key(text, voice, language, rate))
        if found is not None:
            self.metrics.memory_hits += 1
        return found

    def render(self, text: str, voice=None, language=None, rate=None) -> defer.Deferred:
        """Deferred firing with read-only 8 kHz int16 audio, or failing with TtsError."""
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            return defer.fail(TtsError(f"text must be 1..{MAX_TEXT} non-blank characters"))
        try:
            voice, language, rate = self._params(voice, language, rate)
        except (TypeError, ValueError) as e:
            return defer.fail(TtsError(f"bad rate: {e}"))
        key = self.key(text, voice, language, rate)
        found = self.cached(text, voice, language, rate)
        if found is not None:
            return defer.succeed(found)
        waiter = defer.Deferred()
        if key in self._inflight:  # the same prompt is already on its way
            self._inflight[key].append(waiter)
            return waiter
        self._inflight[key] = [waiter]
        d = self._run_in_thread(self._read_disk, key)
        d.addCallback(self._disk_or_render, key, text, voice, language, rate)
        d.addBoth(self._deliver, key, text)
        return waiter

    def _read_disk(self, key: str) -> np.ndarray | None:
        path = self._disk_path(key)
        try:
            return load_wav(path) if path.is_file() else None
        except (OSError, AudioFormatError):
            return None  # damaged entry: render again

    def _disk_or_render(self, found, key, text, voice, language, rate):
        if found is not None:
            self.metrics.disk_hits += 1
            return found
        self.metrics.misses += 1
        started = self._reactor.seconds()

        def rendered(samples):
            self.metrics.render_seconds += self._reactor.seconds() - started
            samples = check_output(np.asarray(samples, dtype=np.int16))
            return self._run_in_thread(save_wav, self._disk_path(key), samples).addCallback(lambda _: samples)
        return defer.maybeDeferred(self.worker.render, text, voice, language, rate).addCallback(rendered)

    def _deliver(self, result, key, text):
        waiters = self._inflight.pop(key, [])
        if isinstance(result, np.ndarray):
            result = frozen(result)
            self._memory.put(key, result)
            for w in waiters:
                w.callback(result)
            return None
        self.metrics.failures += 1
        error = result.value if isinstance(result.value, TtsError) else TtsError(
            f"{type(result.value).__name__}: {result.value}")
        log.error("tts render failed for {text!r}: {error}", text=text[:80], error=error)
        for w in waiters:
            w.errback(error)
        return None

    def fallback_audio(self) -> np.ndarray:
        """The configured fallback, else a pre-rendered FALLBACK_TEXT, else a beep."""
        if self._fallback is not None:
            return self._fallback
        spoken = self._memory.get(self.key(FALLBACK_TEXT))
        return spoken if spoken is not None else builtin_fallback()

    def render_or_fallback(self, text: str, voice=None, language=None, rate=None) -> defer.Deferred:
        """Like render, but never fails: on error the fallback audio is returned (and logged)."""
        def fallback(failure):
            failure.trap(Exception)
            self.metrics.fallbacks += 1
            log.warn("tts: playing fallback instead of {text!r}", text=str(text)[:80])
            return self.fallback_audio()
        return self.render(text, voice, language, rate).addErrback(fallback)

    def prerender(self, items: Iterable, include_fallback: bool = True) -> defer.Deferred:
        """Render (or load from disk into memory) every (text, voice, language, rate).

        Fires with the number of failures once all are done; failures are logged, not raised.
        """
        items = [tuple(i) if not isinstance(i, str) else (i,) for i in items]
        if include_fallback:
            items.append((FALLBACK_TEXT,))
        ds = [self.render(*item).addCallbacks(lambda _: 0, lambda _: 1) for item in items]
        return defer.gatherResults(ds).addCallback(sum)

    def list_voices(self) -> defer.Deferred:
        """Deferred list of Voice(id, name, languages) from the worker (memoised)."""
        if self._voices is not None:
            return defer.succeed(list(self._voices))

        def keep(voices):
            self._voices = list(voices)
            return list(voices)
        return defer.maybeDeferred(self.worker.list_voices).addCallback(keep)

    def close(self) -> defer.Deferred:
        close = getattr(self.worker, "close", None)
        return defer.maybeDeferred(close) if close else defer.succeed(None)


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    worker_main()
