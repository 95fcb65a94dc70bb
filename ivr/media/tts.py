"""Text-to-speech with caches: ``TtsEngine`` renders through the worker process of
``tts_worker.py`` (espeak-ng via pyttsx3, see there why a process), with an in-memory LRU
in front (``cached()`` is a same-tick, memory-only lookup) and a disk cache of 8 kHz WAVs
keyed by sha256 of (text, voice, language, rate, engine id). The request and the engine id
(cache format, output rate, espeak-ng version and data, pyttsx3, soxr) are everything the
samples depend on: the worker renders each request from the same engine state. Disk reads
and writes run through ``run_in_thread``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from twisted.internet import defer

from ivr.media.audio import ArrayLru, AudioFormatError, frozen, load_wav, save_wav, silence, tone
# Re-exported: callers import the worker's public names from here too.
from ivr.media.tts_worker import (CACHE_FORMAT, FALLBACK_TEXT, MAX_TEXT, MIN_RMS,  # noqa: F401
                                  EspeakRenderer, TtsError, TtsWorkerProcess, Voice, check_output,
                                  engine_id, log, resolve_voice)

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


