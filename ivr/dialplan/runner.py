"""Run a flow on one call, one verb at a time.

    runner = FlowRunner(plan, call, http=TreqHttpClient())
    d = runner.run(match.flow)   # fires with the reason the run ended

Control flow comes back from verbs as outcomes: ``Goto`` replaces the current flow (inside a
``gosub`` it stays inside it), ``Gosub`` runs a flow and comes back, ``Inline`` runs a branch's
steps then carries on, ``Return`` leaves a gosub (or ends a top-level flow), ``Finish`` ends the
run (hangup / reject).  When the flow runs off its end the call is hung up (an unanswered call
is rejected with 480).  When the call ends, the current verb is cancelled and the run stops
quietly.  At most ``settings.max_steps`` steps (default 1000) run per call: a plan that loops
forever is stopped, logged and hung up.

Reasons: completed, hangup, reject, ended, loop_guard, error, cancelled.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from twisted.internet import defer
from twisted.python.failure import Failure

from ivr.call.interface import CallEnded
from ivr.dialplan.model import Dialplan
from ivr.dialplan.verbs import build_verb
from ivr.dialplan.verbs.base import Env, Finish, Gosub, Goto, Inline, Return

log = logging.getLogger(__name__)
MAX_GOSUB_DEPTH = 50


@dataclass
class Frame:
    steps: tuple
    kind: str   # "flow", "sub" (entered by gosub) or "block" (inline branch)
    name: str   # flow name (blocks: the flow they sit in)
    index: int = 0


class FlowRunner:
    def __init__(self, plan: Dialplan, call, verb_factory=build_verb, tts=None, *,
                 http=None, now=None, max_steps: int | None = None, telephony=None,
                 queues=None):
        self.plan = plan
        self.call = call
        self.verb_factory = verb_factory
        self.tts = tts
        self.env = Env(settings=plan.settings, now=now, http=http,
                       has_flow=lambda name: name in plan.flows, telephony=telephony,
                       queues=queues)
        self.max_steps = max_steps or plan.settings.max_steps
        self.steps_run = 0
        self.stack: list[Frame] = []
        self.current = None         # the verb running now
        self.reason: str | None = None
        self._done = defer.Deferred()
        self._sync_box: list | None = None
        self._ended_during_step = False

    # -- public ---------------------------------------------------------------------------
    def run(self, flow_name: str) -> defer.Deferred:
        flow = self.plan.flow(flow_name)
        self.call.log_event("flow_start", flow=flow_name)
        if flow is None:
            self._finish("error", f"no flow '{flow_name}'")
            return self._done
        self.stack = [Frame(flow.steps, "flow", flow_name)]
        if self.call.ended:
            self._finish("ended")
            return self._done
        self.call.when_ended().addBoth(self._call_ended)
        self._advance()
        return self._done

    def cancel(self) -> None:
        """Stop the run: cancel the current verb; the run's Deferred fires 'cancelled'."""
        self._stop("cancelled")

    @property
    def finished(self) -> bool:
        return self.reason is not None

    # -- the loop -------------------------------------------------------------------------
    def _advance(self) -> None:
        while not self.finished:
            verb = self._next_verb()
            if verb is None:
                return
            box: list = []
            self._sync_box = box
            try:
                d = verb.run(self.call)
            except Exception:
                d = defer.fail(Failure())
            d.addBoth(self._settled, box)
            self._sync_box = None
            if not box:
                if self._ended_during_step:
                    self._stop("ended")
                return  # pending: _settled continues the loop later
            if not self._apply(box[0]):
                return
            if self._ended_during_step:
                self._finish("ended")
                return

    def _settled(self, result, box):
        if box is self._sync_box:
            box.append(result)
            return None
        if self._apply(result):
            self._advance()
        return None

    def _next_verb(self):
        while self.stack and self.stack[-1].index >= len(self.stack[-1].steps):
            self.stack.pop()
        if not self.stack:
            self._finish("completed")
            return None
        frame = self.stack[-1]
        step = frame.steps[frame.index]
        frame.index += 1
        self.steps_run += 1
        if self.steps_run > self.max_steps:
            self.call.log_event("loop_guard", steps=self.max_steps, flow=frame.name,
                                line=step.where.line)
            log.warning("call %s: stopped after %d steps at %s", self.call.call_id,
                        self.max_steps, step.where)
            self._finish("loop_guard")
            return None
        self.call.log_event("step", flow=frame.name, verb=step.verb, at=str(step.where))
        try:
            self.current = self.verb_factory(step, self.env)
        except Exception as e:
            self._finish("error", f"cannot build '{step.verb}' at {step.where}: {e!r}")
            return None
        return self.current

    def _apply(self, result) -> bool:
        """Act on a verb's outcome; True to carry on with the next step."""
        self.current = None
        if self.finished:
            # The usual end of a verb: the call ended and _stop cancelled it.  The
            # CancelledError's traceback holds every frame from the BYE down to the verb
            # and the frames hold the Failure: a cycle only the garbage collector frees,
            # with the whole BYE (transaction, request, response) in it.  Nobody reads
            # this Failure, so its traceback goes now and everything is freed at once.
            if isinstance(result, Failure):
                result.cleanFailure()
            return False
        if isinstance(result, Failure):
            if result.check(CallEnded):
                result.cleanFailure()  # as above: not logged, so no traceback to keep
                self._finish("ended")
            elif result.check(defer.CancelledError) and self.call.ended:
                result.cleanFailure()
                self._finish("ended")
            else:
                self._finish("error", result.getErrorMessage() or repr(result.value),
                             failure=result)
            return False
        if result is None:
            return True
        if isinstance(result, Goto):
            return self._enter(result.flow, goto=True)
        if isinstance(result, Gosub):
            if sum(f.kind == "sub" for f in self.stack) >= MAX_GOSUB_DEPTH:
                self._finish("error", f"gosub nested deeper than {MAX_GOSUB_DEPTH}")
                return False
            return self._enter(result.flow, goto=False)
        if isinstance(result, Inline):
            self.stack.append(Frame(result.steps, "block", self.stack[-1].name if self.stack else ""))
            return True
        if isinstance(result, Return):
            while self.stack:
                frame = self.stack.pop()
                if frame.kind == "sub":
                    return True
            self._finish("completed")
            return False
        if isinstance(result, Finish):
            self._finish(result.reason)
            return False
        self._finish("error", f"verb returned {result!r}")
        return False

    def _enter(self, name: str, goto: bool) -> bool:
        flow = self.plan.flow(name)
        if flow is None:
            self._finish("error", f"no flow '{name}'")
            return False
        kind = "sub"
        if goto:
            kind = "flow"
            while self.stack:  # leave blocks and the current flow, not the gosub caller
                frame = self.stack.pop()
                if frame.kind != "block":
                    kind = frame.kind
                    break
        self.stack.append(Frame(flow.steps, kind, name))
        return True

    # -- the end --------------------------------------------------------------------------
    def _call_ended(self, _reason):
        if self._sync_box is not None:
            self._ended_during_step = True  # e.g. hangup/reject: let the verb report first
        else:
            self._stop("ended")
        return None

    def _stop(self, reason: str) -> None:
        if self.finished:
            return
        verb, self.current = self.current, None
        self._finish(reason)
        if verb is not None:
            try:
                verb.cancel()
            except Exception:  # a verb that cannot cancel must not break the caller
                log.exception("cancelling %s", verb.name)

    def _finish(self, reason: str, detail: str | None = None, failure: Failure | None = None):
        if self.finished:
            return
        self.reason = reason
        call = self.call
        if reason == "error":
            log.error("call %s: dialplan error: %s", call.call_id, detail,
                      exc_info=failure.value if failure is not None else None)
            call.log_event("error", detail=detail or "")
        if reason in ("completed", "loop_guard", "error") and not call.ended:
            if call.answered:
                call.hangup("normal" if reason == "completed" else reason)
            else:
                call.reject(500 if reason == "error" else 480)
        call.log_event("flow_end", reason=reason, steps=self.steps_run)
        self._done.callback(reason)
