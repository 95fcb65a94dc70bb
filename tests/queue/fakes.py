"""A dialer whose ring attempts the test resolves by hand, and an engine factory."""
from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from ivr.queue import QueueConfig, QueueEngine


class FakeAttempt:
    def __init__(self, dialer, agent, entry):
        self.dialer = dialer
        self.agent = agent
        self.entry = entry
        self.result = Deferred()
        self.cancelled = False
        self.started = dialer.clock.seconds()

    @property
    def pending(self) -> bool:
        return not self.cancelled and not self.result.called

    def answer(self, value=True):
        assert self.pending, f"{self.agent} ring is not pending"
        self.result.callback(value)

    def reject(self):
        assert self.pending
        self.result.callback(False)

    def cancel(self):
        self.cancelled = True
        if not self.result.called:
            self.result.cancel()          # errbacks CancelledError, as a real leg would


class FakeDialer:
    def __init__(self, clock):
        self.clock = clock
        self.attempts: list[FakeAttempt] = []
        self.immediate: dict[str, object] = {}   # agent -> value fired synchronously

    def ring(self, agent, entry):
        attempt = FakeAttempt(self, agent, entry)
        self.attempts.append(attempt)
        if agent in self.immediate:
            attempt.result.callback(self.immediate[agent])
        return attempt

    def pending(self, agent=None):
        return [a for a in self.attempts if a.pending and (agent is None or a.agent == agent)]

    def rung(self):
        return [a.agent for a in self.attempts]

    def last(self, agent):
        matches = [a for a in self.attempts if a.agent == agent]
        assert matches, f"{agent} was never rung"
        return matches[-1]


def make(*configs, reachable=None, **overrides):
    clock = Clock()
    dialer = FakeDialer(clock)
    if not configs:
        configs = (QueueConfig("sales", ("a", "b", "c"), **overrides),)
    engine = QueueEngine(clock, dialer, configs,
                         is_reachable=(lambda a: a in reachable) if reachable is not None else None)
    return clock, dialer, engine


def outcomes(entry):
    got = []
    entry.result.addCallback(got.append)
    return got
