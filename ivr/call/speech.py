"""Listening for speech on a call leg: the caller's decoded audio goes through the
voice-activity detector (:class:`ivr.media.recognizer.Vad`) and, from the start of an
utterance (with 300 ms of pre-roll) to its end, to a recogniser worker as it arrives
(:class:`ivr.media.asr_worker.RecognizerPool`).  Each finished utterance becomes a
:class:`SpeechResult`: the hint heard ("" when none matched) with its confidence and times.

A verb opens one listener (``Call.listen``), reads results with :meth:`next_result`, and
closes it; the listener also closes when the call ends.  ``on_start`` is called when speech
begins (barge-in).  When the recogniser fails (worker died, model missing, no answer in
time) the waiting result errbacks with RecognizerError, ``failed`` says why and the
listener stops listening: the verb carries on with DTMF.
"""
from __future__ import annotations

from collections import deque
from typing import Callable

import numpy as np
from twisted.internet import defer
from twisted.logger import Logger

from ..media.recognizer import FRAME, RecognizerError, SpeechResult, Vad, VadEvent, match_hint

log = Logger(namespace="ivr.call.speech")
PREROLL_FRAMES = 15  # 300 ms before the detected start: the word's onset


class SpeechListener:
    def __init__(self, call, pool, hints, language: str = "en-us",
                 speech_timeout: float = 0.8, max_seconds: float = 10.0) -> None:
        self.call, self.pool = call, pool
        self.hints, self.language = tuple(hints), language
        self.vad = Vad(speech_timeout, max_seconds)
        self.clock = call.clock
        self.opened_at = self.clock.seconds()
        self.on_start: Callable[[], None] | None = None
        self.failed: RecognizerError | None = None
        self.closed = False
        self.heard: list[SpeechResult] = []
        self._preroll: deque = deque(maxlen=PREROLL_FRAMES)
        self._carry = None
        self._utterance = None
        self._pending = 0  # utterances sent to the recogniser and not answered yet
        self._results: deque = deque()
        self._waiter: defer.Deferred | None = None
        self._rtp = call._ensure_rtp()
        self._rtp.add_audio_listener(self)
        call.when_ended().addBoth(lambda _: self.close())

    @property
    def busy(self) -> bool:
        """Speech is going on, or a result is on its way."""
        return not self.closed and self.failed is None and (
            self.vad.in_speech or self._pending > 0)

    # -- audio in ----------------------------------------------------------------------
    def __call__(self, samples) -> None:
        """A decoded packet (20 ms, or 10/30/40/60 ms by its ptime): 20 ms frames on."""
        if self._carry is not None:
            samples = np.concatenate([self._carry, samples])
            self._carry = None
        whole = len(samples) - len(samples) % FRAME
        for at in range(0, whole, FRAME):
            self._frame(samples[at:at + FRAME])
        if whole < len(samples):
            self._carry = samples[whole:]

    def _frame(self, frame) -> None:
        if self.closed or self.failed is not None:
            return
        event = self.vad.feed(frame)
        if event is VadEvent.START:
            self._started(frame)
        elif self._utterance is not None:
            self._utterance.feed(frame)
            if event is VadEvent.END:
                self._ended()
        self._preroll.append(frame)

    def _started(self, frame) -> None:
        try:
            self._utterance = self.pool.open(self.hints, self.language)
        except RecognizerError as e:
            self._fail(e)
            return
        # a worker that dies while the caller speaks fails the listener at once
        self._utterance.result.addCallbacks(self._heard, self._failed,
                                            callbackArgs=(self._utterance,))
        for old in self._preroll:
            self._utterance.feed(old)
        self._utterance.feed(frame)
        if self.on_start is not None:
            self.on_start()

    def _ended(self) -> None:
        utterance, self._utterance = self._utterance, None
        if self.vad.too_short:
            utterance.abort()
            return
        utterance.timing = (self.clock.seconds(), (self.vad.started_at - 1) * 0.02,
                            self.vad.last_voiced * 0.02)
        self._pending += 1
        utterance.finish()

    def _heard(self, outcome, utterance) -> None:
        self._pending -= 1
        text, confidence, _decode_ms = outcome
        ended_at, start, end = utterance.timing
        result = SpeechResult(match_hint(text, self.hints), confidence, text, start, end,
                              (self.clock.seconds() - ended_at) * 1000)
        self.heard.append(result)
        self._deliver(result)

    def _failed(self, failure) -> None:
        failure.trap(RecognizerError)
        if self._pending > 0:
            self._pending -= 1
        self._fail(failure.value)

    # -- results out -------------------------------------------------------------------
    def next_result(self) -> defer.Deferred:
        """The next finished utterance (a SpeechResult); RecognizerError once failed."""
        if self._results:
            return defer.succeed(self._results.popleft())
        if self.failed is not None:
            return defer.fail(self.failed)
        self._waiter = defer.Deferred(lambda d: self._forget(d))
        return self._waiter

    def _forget(self, d) -> None:
        if self._waiter is d:
            self._waiter = None

    def clear(self) -> None:
        """Forget results nobody read (before a retry's prompt)."""
        self._results.clear()

    def _deliver(self, result: SpeechResult) -> None:
        if self.closed:
            return
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.callback(result)
        else:
            self._results.append(result)

    def _fail(self, error: RecognizerError) -> None:
        if self.failed is not None or self.closed:
            return
        self.failed = error
        log.error("call {cid}: speech recognition unavailable ({error}); the gather falls "
                  "back to DTMF", cid=self.call.call_id, error=error)
        self.call.log_event("speech_failed", error=str(error))
        self._stop_audio()
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.errback(error)

    def _stop_audio(self) -> None:
        self._rtp.remove_audio_listener(self)
        if self._utterance is not None:
            utterance, self._utterance = self._utterance, None
            utterance.abort()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._stop_audio()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.called:
            waiter.cancel()
