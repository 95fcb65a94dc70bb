"""What every verb shares: the lifecycle (``run(call) -> Deferred``, ``cancel()``), the
outcomes a verb hands back to the runner, and small helpers (render, play, sleep)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from twisted.internet import defer, task

from ivr.call.interface import PlaybackResult
from ivr.dialplan.model import Prompt, Settings, Step, Target
from ivr.dialplan.templates import Template


# -- outcomes: what the runner does after a verb -------------------------------------------
@dataclass(frozen=True)
class Goto:
    flow: str


@dataclass(frozen=True)
class Gosub:
    flow: str


@dataclass(frozen=True)
class Inline:
    steps: tuple


@dataclass(frozen=True)
class Return:
    pass


@dataclass(frozen=True)
class Finish:
    reason: str  # "hangup", "reject"


def branch(target: Target | None):
    """The outcome that follows ``target``: None (carry on), Goto, or Inline steps."""
    if target is None:
        return None
    if target.flow is not None:
        return Goto(target.flow)
    return Inline(target.steps)


@dataclass
class RunState:
    early_media: bool = False


@dataclass
class Env:
    """What verbs may use besides the call: settings, a wall clock, HTTP, flow lookup."""
    settings: Settings = field(default_factory=Settings)
    now: Callable[[], datetime] | None = None
    http: Any = None
    has_flow: Callable[[str], bool] = lambda name: False
    state: RunState = field(default_factory=RunState)
    telephony: Any = None  # ivr.call.control.CallControl: dial, transfer
    queues: Any = None     # ivr.queue.QueueEngine: enqueue (None: no queues configured)

    def wall_clock(self, call) -> datetime:
        if self.now is not None:
            return self.now()
        return datetime.fromtimestamp(call.clock.seconds(), tz=timezone.utc)


def template_context(call) -> dict[str, str]:
    """The names a template can use: the plan's variables plus caller.* and call.*."""
    ctx = dict(call.variables)
    caller = call.caller
    hidden = caller.private or caller.number is None
    ctx["caller.number"] = "" if hidden else caller.number
    ctx["caller.name"] = "" if hidden else (caller.name or "")
    ctx["caller.private"] = "true" if hidden else "false"
    ctx["call.id"] = call.call_id
    ctx["call.called"] = call.called
    return ctx


class Verb:
    """One step.  Subclasses set ``name``, ``FIELDS`` (argument schema), ``MAIN`` (the key a
    bare scalar argument fills) and implement ``execute(call)``."""

    name = ""
    FIELDS: dict = {}
    MAIN: str | None = None
    needs_media = False  # answer first unless early media is on

    def __init__(self, step: Step, env: Env):
        self.step = step
        self.args = step.args
        self.env = env
        self.call = None
        self.cancelled = False
        self._waiting: defer.Deferred | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def run(self, call) -> defer.Deferred:
        self.call = call
        if self.needs_media and not call.answered and not self.env.state.early_media:
            d = self.wait(call.answer())
            d.addCallback(lambda _: self.execute(call))
            return d
        return defer.maybeDeferred(self.execute, call)

    def execute(self, call):
        raise NotImplementedError

    def cancel(self) -> None:
        self.cancelled = True
        waiting, self._waiting = self._waiting, None
        if self.call is not None and self.needs_media and not self.call.ended:
            self.call.stop_playback()
        if waiting is not None and not waiting.called:
            waiting.cancel()

    # -- helpers ----------------------------------------------------------------------------
    def wait(self, d: defer.Deferred) -> defer.Deferred:
        """Remember ``d`` so that cancel() can cancel it."""
        if self.cancelled:
            d.cancel()
            return defer.fail(defer.CancelledError())
        self._waiting = d
        return d

    def sleep(self, seconds: float) -> defer.Deferred:
        return self.wait(task.deferLater(self.call.clock, seconds, lambda: None))

    def log(self, event: str, **fields) -> None:
        self.call.log_event(event, verb=self.name, line=self.step.where.line, **fields)

    def render(self, template: Template | None) -> str:
        if template is None:
            return ""
        missing = []
        text = template.render(template_context(self.call), missing.append)
        if missing:
            self.log("template_missing", names=",".join(missing), text=template.source)
        return text

    def voice_args(self, obj) -> dict:
        s = self.env.settings
        return {"voice": getattr(obj, "voice", None) or s.voice,
                "language": getattr(obj, "language", None) or s.language,
                "rate": getattr(obj, "rate", None) or s.rate}

    def speak(self, text: str, barge_in: bool = False, voice_from=None) -> defer.Deferred:
        return self.wait(self.call.say(text, barge_in=barge_in, **self.voice_args(voice_from)))

    @defer.inlineCallbacks
    def play_prompts(self, prompts: tuple[Prompt, ...] | None, barge_in: bool = False):
        """Play each prompt in turn; stop at a barge-in digit.  Fires PlaybackResult."""
        result = PlaybackResult(completed=True)
        for prompt in prompts or ():
            if prompt.file is not None:
                result = yield self.wait(self.call.play_file(prompt.file, barge_in=barge_in))
            else:
                result = yield self.speak(self.render(prompt.text), barge_in, prompt)
            if result is not None and result.digit is not None:
                return result
        return result if result is not None else PlaybackResult(completed=True)
