"""``dial``: call someone and bridge the caller to them.

    - dial:
        to: "2001"              # an extension (all its phones), a ring group, a SIP URI,
                                # a number (through the trunk), or a list of these
        strategy: simultaneous  # for lists: simultaneous (default) or sequential
        timeout: 20             # seconds each attempt rings (default: a ring group's
                                # ring_timeout, else 30)
        caller_id: "{{caller.number}}"   # default: the caller's number
        answer_on_bridge: true  # keep the caller ringing until someone answers (default);
                                # false answers first and plays a ringback tone
        on_busy: voicemail      # branches (a flow or inline steps) when nobody answered
        on_no_answer: voicemail
        on_failed: sorry
        variable: dial_status   # answered | busy | no-answer | rejected | failed | cancelled
        allow_trunk: false      # numbers go out through a trunk only for an authenticated
                                # extension whose `trunks` lists it, or when the plan says
                                # so here (e.g. forwarding a DID to a mobile): no toll fraud

The first phone to answer wins; the others are cancelled.  Audio is relayed through the
server both ways, digits are passed through, and a hang-up on either side ends both legs.
When several attempts fail, the status is ``busy`` only if every one was busy.
"""
from __future__ import annotations

import numpy as np
from twisted.internet import defer

from ivr.call.telephony import LegFailed, UnknownTarget
from ivr.call.visitors import is_trunk_route, may_use_trunks
from ivr.dialplan.schema import (ScalarNode, boolean, custom, number, read_template, string, target,
                                 template, variable)
from ivr.dialplan.verbs.base import Finish, Verb, branch
from ivr.media.audio import silence, tone


def _targets(p, node):
    """A target or a list of targets, each a template (``"{{dialled}}"``)."""
    if isinstance(node, ScalarNode):
        items = [node]
    else:
        items = getattr(node, "value", None)
        if not (isinstance(items, list) and items and all(isinstance(i, ScalarNode) for i in items)):
            return p.error(node, "dial 'to' is a target or a list of targets")
    if any(not i.value.strip() for i in items):
        return p.error(node, "dial needs a target")
    return tuple(read_template(p, i, i.value.strip()) for i in items)


DEFAULT_TIMEOUT = 30.0
RINGBACK = np.concatenate([tone(440, 2.0, amplitude=0.15) + tone(480, 2.0, amplitude=0.15),
                           silence(4.0)]).astype(np.int16)


class Dial(Verb):
    name = "dial"
    MAIN = "to"
    FIELDS = {"to": custom(_targets, required=True, json={"anyOf": [
                  {"type": "string", "pattern": "\\S"},
                  {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "\\S"}}]}),
              "strategy": string(default="simultaneous", choices=("simultaneous", "sequential")),
              "timeout": number(minimum=1, maximum=600),
              "caller_id": template(), "answer_on_bridge": boolean(True),
              "on_busy": target(), "on_no_answer": target(), "on_failed": target(),
              "variable": variable(default="dial_status"), "allow_trunk": boolean(False)}

    def __init__(self, step, env):
        super().__init__(step, env)
        self.legs: list = []

    def _expand(self, telephony):
        """Targets -> list of attempts; each attempt is a list of routes rung together."""
        groups = telephony.ring_groups() if telephony is not None else {}
        attempts: list[list[tuple]] = []
        sequential = self.args.strategy == "sequential"
        timeout = self.args.timeout  # None: the ring groups' own, else 30 s
        for name in (self.render(t) for t in self.args.to):
            group = groups.get(name)
            members = group.members if group is not None else (name,)
            if group is not None:
                sequential = sequential or group.strategy == "sequential"
                if self.args.timeout is None:
                    timeout = min(timeout or group.ring_timeout, group.ring_timeout)
            for member in members:
                try:
                    routes = [(r, member) for r in telephony.routes(member, self._trunks())]
                except UnknownTarget as exc:
                    self.log("dial_skip", target=member, why=str(exc))
                    continue
                if not may_use_trunks(self.call):  # not even a SIP URI naming a trunk
                    directory = getattr(telephony, "directory", None)
                    routes = [r for r in routes if not is_trunk_route(directory, r[0])]
                    if not routes:
                        self.log("dial_skip", target=member,
                                 why="a browser caller never leaves through a trunk")
                        continue
                attempts.append(routes)
        if not sequential and attempts:
            attempts = [[route for attempt in attempts for route in attempt]]
        return attempts, timeout or DEFAULT_TIMEOUT

    def _trunks(self) -> tuple[str, ...] | None:
        """The trunks this call may use: any when the plan allows it, else those of the
        authenticated extension that placed the call (none for anonymous callers, and
        never any for an anonymous browser caller, whatever the plan says)."""
        if self.args.allow_trunk and may_use_trunks(self.call):
            return None
        extension = getattr(getattr(self.call, "session", None), "caller", None)
        extension = getattr(extension, "extension", None)
        return tuple(extension.trunks) if extension is not None else ()

    def execute(self, call):
        telephony = self.env.telephony
        if telephony is None:
            self.log("dial_failed", why="no telephony configured")
            return self._failed(call, "failed")
        attempts, timeout = self._expand(telephony)
        if not attempts:
            return self._failed(call, "failed")
        return self._run(call, telephony, attempts, timeout)

    @defer.inlineCallbacks
    def _run(self, call, telephony, attempts, timeout):
        caller_id = self.render(self.args.caller_id) if self.args.caller_id else call.caller.number
        if self.args.answer_on_bridge:
            call.ring()
        else:
            yield self.wait(call.answer())
            call.play_audio(np.tile(RINGBACK, 10))
        reasons = []
        for routes in attempts:
            if self.cancelled or call.ended:
                break
            self.log("dial", targets=[t for _, t in routes], timeout=timeout)
            self.legs = [telephony.originate_route(route, target, caller_id=caller_id,
                                                   caller_name=call.caller.name, timeout=timeout)
                         for route, target in routes]
            winner = yield self.wait(_first_answer(self.legs))
            if winner is not None:
                for leg in self.legs:
                    if leg is not winner:
                        leg.hangup("answered-elsewhere")
                return (yield self._bridge(call, telephony, winner))
            reasons.extend(leg.end_reason for leg in self.legs)
        status = "busy" if reasons and all(r == "busy" for r in reasons) else (
            "no-answer" if "no-answer" in reasons else (reasons[0] if reasons else "failed"))
        return self._failed(call, status if status in ("busy", "no-answer", "rejected",
                                                       "cancelled") else "failed")

    @defer.inlineCallbacks
    def _bridge(self, call, telephony, leg):
        call.variables[self.args.variable] = "answered"
        if not call.answered:
            yield self.wait(call.answer())
        call.stop_playback()
        self.log("bridged", to=leg.call_id)
        reason = yield self.wait(telephony.bridge(call, leg))
        self.log("bridge_ended", reason=reason)
        return Finish("hangup") if call.ended else None

    def _failed(self, call, status: str):
        call.variables[self.args.variable] = status
        self.log("dial_result", status=status)
        call.stop_playback()
        target = {"busy": self.args.on_busy, "no-answer": self.args.on_no_answer}.get(status)
        return branch(target or self.args.on_failed)

    def cancel(self) -> None:
        for leg in self.legs:
            if not leg.ended:
                leg.hangup("caller-hangup")
        super().cancel()


def _first_answer(legs) -> defer.Deferred:
    """Fires with the first leg to answer, or None once every leg has failed."""
    result = defer.Deferred()
    pending = {"n": len(legs)}

    def answered(leg):
        if not result.called:
            result.callback(leg)

    def failed(failure):
        failure.trap(LegFailed)
        pending["n"] -= 1
        if pending["n"] == 0 and not result.called:
            result.callback(None)

    for leg in legs:
        leg.when_answered().addCallbacks(answered, failed)
    return result
