"""The PocketSphinx engine: streamed 8 kHz audio in, the hint heard out (one decoder per
worker does the searches).  Runs inside a recogniser worker process (:mod:`ivr.media.asr_worker`), never on
the reactor.

The ``pocketsphinx`` wheel ships a US-English acoustic model trained on 16 kHz audio, so the
call's 8 kHz audio is resampled (soxr) to 16 kHz.  The search is a
JSGF grammar built from the step's hints (only those phrases can be heard).

The audio is streamed to the worker as it arrives; the search itself runs over the whole
utterance when its end is known (``full_utt``), after a noise floor is put under it
(:func:`fill_noise_floor`) and it is resampled: PocketSphinx's live cepstral mean
normalisation, which a frame-by-frame search needs, starts from a wide-band estimate and on
band-limited telephone audio lost about 10 points of accuracy against the utterance's own
mean (measured on the generated set of bench/b9_speech.py).  The final search of a short
command costs a few milliseconds to a few tens.  A decoder takes ~0.4 s to load: the pool
loads it when the server starts (``RecognizerPool.start``) and keeps it.
"""
from __future__ import annotations

import os

import numpy as np
import soxr

from ivr.media.recognizer import RecognizerError, jsgf_grammar

LANGUAGES = ("en-us",)


class SphinxEngine:
    name = "pocketsphinx"

    def __init__(self, model_dir: str | None = None) -> None:
        try:
            import pocketsphinx
        except ImportError as e:  # pragma: no cover - the dependency is in pyproject
            raise RecognizerError(f"pocketsphinx is not installed: {e}") from None
        self._ps = pocketsphinx
        base = model_dir or pocketsphinx.get_model_path()
        self.hmm = os.path.join(base, "en-us", "en-us")
        self.dict = os.path.join(base, "en-us", "cmudict-en-us.dict")
        for path in (self.hmm, self.dict):
            if not os.path.exists(path):
                raise RecognizerError(f"speech model missing: {path}")
        self._free: list = []
        self._grammar_of: dict[int, str] = {}  # id(decoder) -> the grammar it searches
        self.decoders_made = 0
        self._words: set[str] | None = None

    def _decoder(self):
        if self._free:
            return self._free.pop()
        config = self._ps.Config(hmm=self.hmm, dict=self.dict, lm=None, samprate=16000,
                                 loglevel="FATAL")
        try:
            decoder = self._ps.Decoder(config)
            self.decoders_made += 1
            return decoder
        except RuntimeError as e:
            raise RecognizerError(f"pocketsphinx failed to load its model from {self.hmm}: {e}")

    def known_words(self) -> set[str]:
        if self._words is None:
            with open(self.dict, encoding="utf-8") as f:
                self._words = {line.split(" ", 1)[0] for line in f if line.strip()}
        return self._words

    def start(self, hints, language: str = "en-us") -> "SphinxUtterance":
        if language.lower() not in LANGUAGES:
            raise RecognizerError(f"pocketsphinx has no model for language {language!r}")
        return SphinxUtterance(self, jsgf_grammar(hints))

    def warm(self) -> None:
        """Load the model and run one search now, not on a caller's first word: a decoder
        takes ~0.4 s to load and its first search pages the model in (the first word
        through a fresh worker took ~1 s more than the next ones)."""
        utterance = self.start(["hello"])
        utterance.feed(np.random.default_rng(0).integers(-500, 500, 8000).astype(np.int16))
        utterance.finish()

    def decode(self, grammar: str, pcm16k: bytes):
        """The best hypothesis for ``pcm16k`` under ``grammar`` (None when nothing).

        One decoder serves every utterance of the worker: the search runs only here, one
        utterance at a time, so concurrent utterances need no decoder (~0.4 s and ~20 MB
        each) of their own.  The grammar is set again only when it changed."""
        decoder = self._decoder()
        try:
            if self._grammar_of.get(id(decoder)) != grammar:
                try:
                    decoder.add_jsgf_string("hints", grammar)
                    decoder.activate_search("hints")
                except Exception as e:
                    raise RecognizerError(f"grammar refused: {e}") from None
                self._grammar_of[id(decoder)] = grammar
            decoder.start_utt()
            decoder.process_raw(pcm16k, False, True)
            decoder.end_utt()
            return decoder.hyp()
        finally:
            self.release(decoder)

    def release(self, decoder) -> None:
        self._free.append(decoder)


FILL_DB = 25.0  # the noise floor put under an utterance, below its loud frames' power


def fill_noise_floor(pcm8k: np.ndarray, below_db: float = FILL_DB) -> np.ndarray:
    """``pcm8k`` with telephone-band white noise ``below_db`` under the power of its loud
    frames (the top 30% of its 20 ms frames: the speech).

    The acoustic model was trained on audio that always has a noise floor.  Over a clean
    line (a good phone, or G.711 digital silence around the word) the generated set was
    recognised 10 times in 36 and "support" was heard as "operator"; with this floor, 36 in
    36, and utterances that already carry noise at 20 or 10 dB SNR lose nothing (measured
    with bench/b9_speech.py's voices).  Seeded by the length: the same audio gives the same
    result."""
    x = np.asarray(pcm8k, dtype=np.float64)
    whole = len(x) // 160 * 160
    if whole == 0:
        return np.asarray(pcm8k, dtype=np.int16)
    frames = np.mean(x[:whole].reshape(-1, 160) ** 2, axis=1)
    loud = np.sort(frames)[-max(1, len(frames) * 3 // 10):]
    power = float(np.mean(loud))
    if power <= 0:
        return np.asarray(pcm8k, dtype=np.int16)
    spectrum = np.fft.rfft(np.random.default_rng(len(x)).standard_normal(len(x)))
    freqs = np.fft.rfftfreq(len(x), 1 / 8000)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    noise = np.fft.irfft(spectrum, len(x))
    noise *= np.sqrt(power / 10 ** (below_db / 10) / (np.mean(noise ** 2) or 1.0))
    return np.clip(x + noise, -32768, 32767).astype(np.int16)


class SphinxUtterance:
    def __init__(self, engine: SphinxEngine, grammar: str) -> None:
        self.engine, self.grammar = engine, grammar
        self.chunks: list[np.ndarray] = []
        self.open = True

    def feed(self, pcm8k: np.ndarray) -> None:
        self.chunks.append(np.asarray(pcm8k, dtype=np.int16))

    def finish(self) -> tuple[str, float]:
        """(text, confidence) of the utterance; ("", 0.0) when nothing was recognised."""
        try:
            audio = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
            audio = fill_noise_floor(audio)
            pcm16k = soxr.resample(audio, 8000, 16000).astype(np.int16).tobytes()
            hyp = self.engine.decode(self.grammar, pcm16k)
        finally:
            self.close()
        if hyp is None or not hyp.hypstr:
            return "", 0.0
        return hyp.hypstr, float(hyp.prob)

    def close(self) -> None:
        if self.open:
            self.open = False
            self.chunks = []
