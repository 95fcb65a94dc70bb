"""``enqueue``: put the caller in a call queue until an agent answers (inbound CTI).

    - enqueue:
        queue: support            # a queue in config/extensions.yaml (`queues:`)
        hold: "Please hold, your call is important to us."   # TTS looped while waiting
        hold_file: music          # or a prompt file looped while waiting
        announce: true            # say the position and estimated wait on joining and
                                  # every `announce_position_every` seconds (queue setting)
        on_timeout: voicemail     # max_wait passed (the overflow branch)
        on_no_agents: voicemail   # no agent logged in (registered) when the caller
                                  # arrives, or the queue is full; without it a caller
                                  # waits for an agent unless the queue says otherwise
        variable: queue_result    # answered | timeout | no-agents | full | abandoned

When an agent answers, the caller is bridged to them; when either hangs up, both legs end
and the agent goes into wrap-up.
"""
from __future__ import annotations

from twisted.internet import defer, task

from ivr.dialplan.schema import boolean, prompt_file, string, target, template, variable
from ivr.dialplan.verbs.base import Finish, Verb, branch


def _minutes(seconds) -> str:
    if seconds is None:
        return ""
    minutes = max(1, round(seconds / 60))
    return f" Your estimated wait is about {minutes} minute{'s' if minutes != 1 else ''}."


class Enqueue(Verb):
    name = "enqueue"
    MAIN = "queue"
    needs_media = True
    FIELDS = {"queue": string(required=True), "hold": template(), "hold_file": prompt_file(),
              "announce": boolean(True), "on_timeout": target(), "on_no_agents": target(),
              "variable": variable(default="queue_result")}

    def __init__(self, step, env):
        super().__init__(step, env)
        self.entry = None
        self._announcement: str | None = None

    def execute(self, call):
        engine = self.env.queues
        if engine is None:
            self.log("enqueue_failed", why="no queues configured")
            return self._done(call, "no-agents")
        try:
            # A plan with somewhere to send the caller when nobody is there does not
            # leave them waiting for an agent who may never log in (join_empty: false).
            join_empty = False if self.args.on_no_agents else None
            self.entry = engine.enqueue(self.args.queue, call.caller.number, call,
                                        join_empty=join_empty)
        except Exception as exc:  # UnknownQueueError
            self.log("enqueue_failed", why=str(exc))
            return self._done(call, "no-agents")
        self.log("enqueued", queue=self.args.queue, position=self.entry.position)
        return self._wait(call, engine)

    @defer.inlineCallbacks
    def _wait(self, call, engine):
        entry = self.entry
        if self.args.announce and entry.position:
            self._announcement = (f"You are caller number {entry.position}."
                                  + _minutes(entry.estimated_wait))
            entry.on_announce(self._announce)
        outcome_box: list = []
        arrived = defer.Deferred()  # fires when the queue has an outcome for the caller

        def settle(outcome):
            outcome_box.append(outcome)
            call.stop_playback()
            arrived.callback(None)
            return outcome

        entry.result.addCallback(settle)
        try:
            while not outcome_box and not call.ended and not self.cancelled:
                if self._announcement:
                    text, self._announcement = self._announcement, None
                    playing = call.say(text)
                elif self.args.hold_file:
                    playing = call.play_file(self.args.hold_file)
                elif self.args.hold is not None:
                    playing = call.say(self.render(self.args.hold))
                else:
                    playing = task.deferLater(call.clock, 1.0, lambda: None)
                # Whichever comes first: the hold prompt ends, or an agent answers (a prompt
                # still being rendered must not keep the caller from the agent).
                yield self.wait(_first(playing, arrived))
        finally:
            if not outcome_box:
                entry.abandon()  # the caller hung up (or the plan was cancelled) while waiting
        if not outcome_box:
            return None
        outcome = outcome_box[0]
        self.log("queue_outcome", kind=outcome.kind.value, agent=outcome.agent,
                 wait=round(outcome.wait or 0, 1))
        if outcome.kind.value != "answered":
            return self._done(call, outcome.kind.value)
        call.variables[self.args.variable] = "answered"
        call.variables["queue_agent"] = outcome.agent
        reason = yield self.wait(self.env.telephony.bridge(call, outcome.answer))
        engine.call_ended(outcome.agent)
        self.log("bridge_ended", reason=reason)
        return Finish("hangup") if call.ended else None

    def _announce(self, position, ewt) -> None:
        self._announcement = f"You are caller number {position}." + _minutes(ewt)
        if self.call is not None and not self.call.ended:
            self.call.stop_playback()

    def _done(self, call, kind: str):
        call.variables[self.args.variable] = kind
        if kind == "timeout":
            return branch(self.args.on_timeout)
        if kind in ("no-agents", "full"):
            return branch(self.args.on_no_agents or self.args.on_timeout)
        return None

    def cancel(self) -> None:
        if self.entry is not None:
            self.entry.abandon()
        super().cancel()


def _first(playing: defer.Deferred, arrived: defer.Deferred) -> defer.Deferred:
    """Fires when ``playing`` finishes or ``arrived`` fires; ``playing``'s failure
    (the call ended) passes through unchanged."""
    done = defer.Deferred()

    def finish(result):
        if not done.called:
            done.callback(None)

    def fail(failure):
        if not done.called:
            done.errback(failure)

    playing.addCallbacks(finish, fail)
    arrived.addBoth(lambda r: (finish(None), r)[1])
    return done
