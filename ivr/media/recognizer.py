"""Speech input, the parts that need no engine: what a recogniser returns, the
voice-activity detector that decides where an utterance starts and ends, and the grammar
built from a step's hints.  Pure: audio frames and numbers in, events out; no clock, no I/O.

The engines themselves (PocketSphinx today, see :mod:`ivr.media.sphinx_engine`) run in
worker processes (:mod:`ivr.media.asr_worker`); they are chosen by name from ``ENGINES``
there, so another engine (Vosk, a cloud API) is one more class with the same three methods.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum

import numpy as np

FRAME = 160  # 20 ms at 8 kHz
WORD_RE = re.compile(r"[a-z][a-z']*")


class RecognizerError(Exception):
    """The recogniser could not give a result (worker died, model missing, timed out)."""


@dataclass(frozen=True)
class SpeechResult:
    """What was heard.  ``text`` is the hint that matched ("" for no match); ``heard`` what
    the engine returned; times are seconds from the start of listening; ``latency_ms``
    from the detected end of speech to the result."""
    text: str
    confidence: float
    heard: str = ""
    start: float = 0.0
    end: float = 0.0
    latency_ms: float = 0.0

    def describe(self) -> dict:
        return {"text": self.text, "heard": self.heard, "confidence": round(self.confidence, 3),
                "start": round(self.start, 3), "end": round(self.end, 3),
                "latency_ms": round(self.latency_ms, 1)}


def normalise_hint(hint: str) -> str:
    return " ".join(WORD_RE.findall(hint.lower()))


def jsgf_grammar(hints) -> str:
    """A JSGF grammar accepting exactly one of ``hints`` (normalised words)."""
    phrases = sorted({normalise_hint(h) for h in hints if normalise_hint(h)})
    if not phrases:
        raise ValueError("no words in the hints")
    return "#JSGF V1.0;\ngrammar hints;\npublic <hint> = " + " | ".join(phrases) + ";\n"


def match_hint(heard: str, hints) -> str:
    """The hint ``heard`` names: the whole phrase, or the one phrase it is the start of
    (an engine that stopped a word short: "talk to an" -> "talk to an agent"); "" if none."""
    heard = normalise_hint(heard)
    if not heard:
        return ""
    phrases = {normalise_hint(h): h for h in hints}
    if heard in phrases:
        return phrases[heard]
    longer = [p for p in phrases if p.startswith(heard + " ")]
    return phrases[longer[0]] if len(longer) == 1 else ""


class VadEvent(Enum):
    START = "start"  # speech began (barge-in; send the pre-roll and what follows)
    END = "end"      # the utterance ended (silence for speech_timeout, or too long)


def frame_dbfs(frame: np.ndarray) -> float:
    power = float(np.mean(np.square(frame, dtype=np.float64)))
    return 10 * math.log10(power / 32768.0 ** 2) if power > 0 else -100.0


class Vad:
    """Energy endpointer on 20 ms frames with an adaptive noise floor.

    A frame is *voiced* when it is above ``ABS_MIN_DBFS`` and ``MARGIN_DB`` above the noise
    floor (the floor follows the quiet frames, falls at once and rises slowly, so steady line
    noise at 10 dB SNR is not speech).  Speech starts after ``START_FRAMES`` voiced frames in
    a row (60 ms; a click is not speech) and ends after ``speech_timeout`` seconds without a
    voiced frame, or after ``max_seconds`` of speech.  The first ``WARMUP_FRAMES`` only
    measure the floor."""

    ABS_MIN_DBFS = -48.0
    MARGIN_DB = 9.0
    START_FRAMES = 3
    WARMUP_FRAMES = 5
    MIN_SPEECH_FRAMES = 15  # shorter bursts (a cough, a knock) end as nothing: 300 ms

    def __init__(self, speech_timeout: float = 1.0, max_seconds: float = 10.0) -> None:
        self.end_frames = max(1, round(speech_timeout * 50))
        self.max_frames = max(1, round(max_seconds * 50))
        self.floor = -70.0
        self.frames = 0
        self.in_speech = False
        self.run = 0          # voiced frames in a row (before start)
        self.quiet = 0        # unvoiced frames in a row (during speech)
        self.speech_frames = 0
        self.started_at = self.ended_at = None  # frame numbers
        self.last_voiced = None

    def voiced(self, level: float) -> bool:
        return level > self.ABS_MIN_DBFS and level > self.floor + self.MARGIN_DB

    def feed(self, frame: np.ndarray) -> VadEvent | None:
        level = frame_dbfs(frame)
        self.frames += 1
        if self.frames <= self.WARMUP_FRAMES:
            self.floor = level if self.frames == 1 else max(self.floor, level)
            return None
        voiced = self.voiced(level)
        if not self.in_speech:
            if voiced:
                self.run += 1
                if self.run >= self.START_FRAMES:
                    self.in_speech, self.quiet, self.speech_frames = True, 0, self.run
                    self.started_at = self.frames - self.run
                    self.last_voiced = self.frames
                    return VadEvent.START
            else:
                self.run = 0
                self.floor = level if level < self.floor else 0.95 * self.floor + 0.05 * level
            return None
        self.speech_frames += 1
        if voiced:
            self.quiet = 0
            self.last_voiced = self.frames
        else:
            self.quiet += 1
        if self.quiet >= self.end_frames or self.speech_frames >= self.max_frames:
            self.in_speech = False
            self.ended_at = self.frames
            return VadEvent.END
        return None

    @property
    def too_short(self) -> bool:
        """The utterance that just ended was a burst, not speech."""
        if self.started_at is None or self.last_voiced is None:
            return True
        return self.last_voiced - self.started_at < self.MIN_SPEECH_FRAMES
