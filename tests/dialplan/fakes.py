"""An in-memory call leg for verb and runner tests, driven by a task.Clock.

Prompts last ``prompt_seconds`` each.  A barge-in digit stops playback and stays buffered
for the next ``next_digit`` (the contract the verbs assume).
"""
from __future__ import annotations

from collections import deque

from twisted.internet import defer
from twisted.internet.task import Clock

from ivr.call.interface import CallEnded, CallerId, PlaybackResult, RecordingResult


class FakeHttp:
    """post_json answers from a script: each item is an HttpResponse, an exception, or None
    (never answers: a timeout)."""

    def __init__(self, script):
        self.script = list(script)
        self.requests = []

    def post_json(self, url, body, headers):
        self.requests.append((url, body, headers))
        item = self.script.pop(0) if self.script else None
        if isinstance(item, Exception):
            return defer.fail(item)
        d = defer.Deferred()
        if item is not None:
            delay, response = item if isinstance(item, tuple) else (0, item)
            if delay:
                self.clock.callLater(delay, d.callback, response)
            else:
                d.callback(response)
        return d


class FakeCall:
    def __init__(self, clock=None, caller=None, called="+18005550100", answered=False):
        self.clock = clock or Clock()
        self.call_id = "call-1"
        self.caller = caller or CallerId("+12125551234", "Alice", '"Alice" <sip:+12125551234@x>')
        self.called = called
        self.variables = {}
        self.answered = answered
        self.ended = False
        self.prompt_seconds = 2.0
        self.record_seconds = 5.0
        self.actions = []
        self.events = []
        self.digits = deque()
        self._playing = None     # (deferred, timer, barge_in)
        self._digit_wait = None  # (deferred, timer)
        self._recording = None   # (deferred, timer, path, finish, started)
        self._ended = []
        self._others = set()     # other pending deferreds (echo)

    # -- driving the fake --------------------------------------------------------------------
    def press(self, keys: str) -> None:
        for k in keys:
            self.digits.append(k)
            self.actions.append(("dtmf", k))
            if self._recording is not None and k == self._recording[3]:
                self.digits.pop()
                self._finish_recording("key", k)
                continue
            if self._digit_wait is not None:
                d, timer = self._digit_wait
                self._digit_wait = None
                timer.cancel()
                d.callback(self.digits.popleft())
            elif self._playing is not None and self._playing[2]:
                self._stop(PlaybackResult(False, k))

    def remote_hangup(self) -> None:
        self._end("remote")

    def said(self):
        return [a[1] for a in self.actions if a[0] in ("say", "play")]

    def event_names(self):
        return [e for e, _ in self.events]

    # -- CallLeg -------------------------------------------------------------------------------
    def answer(self):
        self._check()
        self.answered = True
        self.actions.append(("answer",))
        return defer.succeed(None)

    def ring(self, early_media=False):
        self.actions.append(("ring", early_media))

    def reject(self, status, reason=None):
        self.actions.append(("reject", status, reason))
        self._end("rejected")

    def hangup(self, reason="normal"):
        self.actions.append(("hangup", reason))
        self._end(reason)

    def say(self, text, voice=None, language=None, rate=None, barge_in=False):
        self.actions.append(("say", text, voice, language, rate, barge_in))
        return self._play(barge_in)

    def play_file(self, name, barge_in=False):
        self.actions.append(("play", name, barge_in))
        return self._play(barge_in)

    def play_audio(self, audio, barge_in=False):
        self.actions.append(("audio", len(audio), barge_in))
        return self._play(barge_in)

    def _play(self, barge_in):
        if self.ended:
            return defer.fail(CallEnded())
        assert self._playing is None, "two playbacks at once"
        if barge_in and self.digits:
            return defer.succeed(PlaybackResult(False, self.digits[0]))
        d = defer.Deferred(lambda _d: self._cancel_play())
        timer = self.clock.callLater(self.prompt_seconds, self._stop, PlaybackResult(True))
        self._playing = (d, timer, barge_in)
        return d

    def _cancel_play(self):
        if self._playing is not None:
            _d, timer, _b = self._playing
            self._playing = None
            if timer.active():
                timer.cancel()

    def _stop(self, result):
        if self._playing is None:
            return
        d, timer, _ = self._playing
        self._playing = None
        if timer.active():
            timer.cancel()
        d.callback(result)

    def stop_playback(self):
        self.actions.append(("stop_playback",))
        self._stop(PlaybackResult(False))

    def next_digit(self, timeout):
        if self.ended:
            return defer.fail(CallEnded())
        if self.digits:
            return defer.succeed(self.digits.popleft())
        d = defer.Deferred(lambda _d: self._cancel_digit())
        timer = self.clock.callLater(timeout, self._digit_timeout)
        self._digit_wait = (d, timer)
        return d

    def _cancel_digit(self):
        if self._digit_wait is not None:
            _d, timer = self._digit_wait
            self._digit_wait = None
            if timer.active():
                timer.cancel()

    def _digit_timeout(self):
        d, _ = self._digit_wait
        self._digit_wait = None
        d.callback(None)

    def flush_digits(self):
        self.digits.clear()

    def record(self, path, max_seconds, finish_on_key="#", beep=True):
        self.actions.append(("record", path, max_seconds, finish_on_key, beep))
        d = defer.Deferred()
        length = min(max_seconds, self.record_seconds)
        by = "max_length" if max_seconds <= self.record_seconds else "silence"
        timer = self.clock.callLater(length, self._finish_recording, by, None)
        self._recording = (d, timer, path, finish_on_key, self.clock.seconds())
        return d

    def _finish_recording(self, by, digit):
        d, timer, path, _f, started = self._recording
        self._recording = None
        if timer.active():
            timer.cancel()
        d.callback(RecordingResult(path, self.clock.seconds() - started, by, digit))

    def echo(self, seconds):
        self.actions.append(("echo", seconds))
        d = defer.Deferred()
        self._others.add(d)
        self.clock.callLater(seconds, lambda: d.called or d.callback(None))
        return d

    def log_event(self, event, **fields):
        self.events.append((event, fields))

    def when_ended(self):
        d = defer.Deferred()
        if self.ended:
            d.callback("ended")
        else:
            self._ended.append(d)
        return d

    # -- internals --------------------------------------------------------------------------------
    def _check(self):
        if self.ended:
            raise CallEnded()

    def _end(self, reason):
        if self.ended:
            return
        self.ended = True
        pending = []
        if self._playing is not None:
            pending.append(self._playing[0])
            self._playing[1].cancel()
            self._playing = None
        if self._digit_wait is not None:
            pending.append(self._digit_wait[0])
            self._digit_wait[1].cancel()
            self._digit_wait = None
        if self._recording is not None:
            self._finish_recording("hangup", None)
        pending += [d for d in self._others if not d.called]
        for d in pending:
            d.errback(CallEnded())
        for d in self._ended:
            d.callback(reason)
        self._ended = []
