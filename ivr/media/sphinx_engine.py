"""The PocketSphinx engine: one decoder per utterance, streamed 8 kHz audio in, the hint
heard out.  Runs inside a recogniser worker process (:mod:`ivr.media.asr_worker`), never on
the reactor.

The ``pocketsphinx`` wheel ships a US-English acoustic model trained on 16 kHz audio, so the
call's 8 kHz audio is resampled (soxr, streaming) to 16 kHz as it arrives.  The search is a
JSGF grammar built from the step's hints (only those phrases can be heard).

The audio is streamed to the worker and resampled as it arrives; the search itself runs over
the whole utterance when its end is known (``full_utt``): PocketSphinx's live cepstral mean
normalisation, which a frame-by-frame search needs, starts from a wide-band estimate and on
band-limited telephone audio lost about 10 points of accuracy against the utterance's own
mean (measured on the generated set of bench/b9_speech.py).  The final search of a short
command costs a few milliseconds to a few tens.  Decoders take ~0.4 s to load and are kept
for reuse.
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
        self._words: set[str] | None = None

    def _decoder(self):
        if self._free:
            return self._free.pop()
        config = self._ps.Config(hmm=self.hmm, dict=self.dict, lm=None, samprate=16000,
                                 loglevel="FATAL")
        try:
            return self._ps.Decoder(config)
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
        return SphinxUtterance(self, self._decoder(), jsgf_grammar(hints))

    def release(self, decoder) -> None:
        self._free.append(decoder)


class SphinxUtterance:
    def __init__(self, engine: SphinxEngine, decoder, grammar: str) -> None:
        self.engine, self.decoder = engine, decoder
        try:
            decoder.add_jsgf_string("hints", grammar)
            decoder.activate_search("hints")
        except Exception as e:
            engine.release(decoder)
            raise RecognizerError(f"grammar refused: {e}") from None
        self.resampler = soxr.ResampleStream(8000, 16000, 1, dtype="int16")
        self.chunks: list[bytes] = []
        self.open = True

    def feed(self, pcm8k: np.ndarray) -> None:
        out = self.resampler.resample_chunk(np.asarray(pcm8k, dtype=np.int16))
        if len(out):
            self.chunks.append(out.tobytes())

    def finish(self) -> tuple[str, float]:
        """(text, confidence) of the utterance; ("", 0.0) when nothing was recognised."""
        self.chunks.append(self.resampler.resample_chunk(np.zeros(0, np.int16), last=True).tobytes())
        try:
            self.decoder.start_utt()
            self.decoder.process_raw(b"".join(self.chunks), False, True)
            self.decoder.end_utt()
            hyp = self.decoder.hyp()
        finally:
            self.close()
        if hyp is None or not hyp.hypstr:
            return "", 0.0
        return hyp.hypstr, float(hyp.prob)

    def close(self) -> None:
        if self.open:
            self.open = False
            self.chunks = []
            self.engine.release(self.decoder)
