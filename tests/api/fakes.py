"""An in-memory Telephony on an injected clock, scriptable per target."""
from __future__ import annotations

import itertools

from twisted.internet.defer import Deferred, fail, succeed

from ivr.call.telephony import LegFailed, LegInfo, UnknownTarget

_ids = itertools.count(1)


class FakeLeg:
    def __init__(self, tel, target, caller_id, timeout, on_event):
        self.tel = tel
        self.clock = tel.clock
        self.id = f"leg-{next(_ids)}"
        self.target = target
        self.caller_id = caller_id
        self.timeout = timeout
        self.on_event = on_event
        self.state = "calling"
        self.started_at = self.clock.seconds()
        self.answered_at = self.ended_at = None
        self.end_reason = None
        self.failure = None
        self.hangups: list[str] = []
        self.said: list[str] = []
        self.digits_sent: list[str] = []
        self.recordings: list[str] = []
        self.events: list[str] = []
        self._answer_waiters: list[Deferred] = []
        self._end_waiters: list[Deferred] = []
        self._timers = []

    # -- Leg protocol --------------------------------------------------------------
    def info(self) -> LegInfo:
        return LegInfo(self.id, "outbound", self.target, self.state, self.started_at,
                       self.answered_at, self.ended_at, self.end_reason,
                       variables={"digits": ["12"]} if self.tel.gather else {})

    def when_answered(self) -> Deferred:
        if self.answered_at is not None:
            return succeed(self)
        if self.failure is not None:
            return fail(self.failure)
        d = Deferred()
        self._answer_waiters.append(d)
        return d

    def when_ended(self) -> Deferred:
        if self.ended_at is not None:
            return succeed(self.end_reason)
        d = Deferred()
        self._end_waiters.append(d)
        return d

    def hangup(self, reason="normal"):
        self.hangups.append(reason)
        if self.ended_at is not None:
            return
        if self.answered_at is None:
            self.fail("cancelled")
        else:
            self.end(reason)

    def say(self, text):
        self.said.append(text)
        if self.tel.say_fails:
            return fail(RuntimeError("tts broke"))
        d = Deferred()
        self._timers.append(self.clock.callLater(self.tel.say_seconds, d.callback, None))
        return d

    def send_digits(self, digits):
        self.digits_sent.append(digits)
        return succeed(None)

    def start_recording(self, path):
        self.recordings.append(path)

    # -- drivers -------------------------------------------------------------------
    def _event(self, name, **data):
        self.events.append(name)
        if self.on_event:
            self.on_event(name, data)

    def ring(self):
        if self.state == "calling":
            self.state = "ringing"
            self._event("ringing")

    def answer(self):
        if self.ended_at is not None or self.answered_at is not None:
            return
        self.state = "answered"
        self.answered_at = self.clock.seconds()
        self._cancel_timers()
        self._event("answered")
        for d in self._answer_waiters:
            d.callback(self)
        self._answer_waiters = []

    def fail(self, reason, status=None):
        if self.ended_at is not None or self.answered_at is not None:
            return
        self.failure = LegFailed(reason, status)
        self.state = "ended"
        self.ended_at = self.clock.seconds()
        self.end_reason = reason
        self._cancel_timers()
        self._event("failed", reason=reason)
        for d in self._answer_waiters:
            d.errback(LegFailed(reason, status))
        self._answer_waiters = []
        self._fire_end()

    def end(self, reason="normal"):
        if self.ended_at is not None:
            return
        if self.answered_at is None:
            return self.fail(reason)
        self.state = "ended"
        self.ended_at = self.clock.seconds()
        self.end_reason = reason
        self._cancel_timers()
        self._event("completed", reason=reason)
        self._fire_end()

    def _fire_end(self):
        waiters, self._end_waiters = self._end_waiters, []
        for d in waiters:
            d.callback(self.end_reason)

    def _cancel_timers(self):
        for t in self._timers:
            if t.active():
                t.cancel()
        self._timers = []


class FakeTelephony:
    """``plans[target]`` scripts a leg: ``{"ring": s, "answer": s, "hangup": s}`` (seconds
    after originate; hangup after answer) or ``{"fail": ("busy", s)}``.  Unscripted legs
    wait for the test to drive them; every leg fails with no-answer at its timeout."""

    def __init__(self, clock, plans=None, extensions=("2001", "2002")):
        self.clock = clock
        self.plans = plans or {}
        self.extensions = set(extensions)
        self.all: list[FakeLeg] = []
        self.bridges: list[tuple[FakeLeg, FakeLeg]] = []
        self.flows: list[tuple[str, str, dict]] = []
        self.say_seconds = 1.0
        self.say_fails = False
        self.gather = False

    def resolve(self, target):
        if target.startswith(("+", "sip:")) or target in self.extensions:
            return target if target.startswith("sip:") else f"sip:{target}@fake"
        raise UnknownTarget(target)

    def originate(self, target, *, caller_id=None, timeout=30.0, on_event=None):
        self.resolve(target)
        leg = FakeLeg(self, target, caller_id, timeout, on_event)
        self.all.append(leg)
        plan = self.plans.get(target, {})
        later = self.clock.callLater
        leg._timers.append(later(timeout, leg.fail, "no-answer"))
        if "ring" in plan:
            leg._timers.append(later(plan["ring"], leg.ring))
        if "answer" in plan:
            leg._timers.append(later(plan["answer"], leg.answer))
            if "hangup" in plan:
                self.clock.callLater(plan["answer"] + plan["hangup"], leg.end, "remote-bye")
        if "fail" in plan:
            reason, at = plan["fail"]
            leg._timers.append(later(at, leg.fail, reason))
        return leg

    def run_flow(self, leg, flow, variables=None):
        self.flows.append((leg.id, flow, dict(variables or {})))
        return leg.when_ended()

    def bridge(self, a, b):
        self.bridges.append((a, b))
        done = Deferred()

        def ended(reason, other):
            other.hangup("bridge-peer-hangup")
            if not done.called:
                done.callback(reason)
        a.when_ended().addCallback(ended, b)
        b.when_ended().addCallback(ended, a)
        return done

    def legs(self):
        return [leg.info() for leg in self.all]

    def leg(self, leg_id):
        return next((leg for leg in self.all if leg.id == leg_id), None)
