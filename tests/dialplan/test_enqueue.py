"""The enqueue verb with the real queue engine, a scripted dialer and in-memory calls."""
from __future__ import annotations

from types import SimpleNamespace

from twisted.internet import defer

from ivr.call.interface import CallerId
from ivr.queue import QueueConfig, QueueEngine

from tests.dialplan.fakes import FakeCall
from tests.dialplan.helpers import plan_of
from tests.queue.fakes import FakeDialer
from ivr.dialplan.runner import FlowRunner

PLAN = """
flows:
  main:
    - enqueue: {queue: support, hold: "Please hold.", on_timeout: overflow}
    - say: "after"
  overflow:
    - say: "overflow"
"""


class Telephony:
    def __init__(self, engine):
        self.queues = engine
        self.bridges = []

    def bridge(self, a, b):
        d = defer.Deferred()
        self.bridges.append((a, b, d))
        return d


def setup(tmp_path, **queue):
    call1 = FakeCall()
    clock = call1.clock
    dialer = FakeDialer(clock)
    config = QueueConfig("support", ("a1", "a2"), strategy="round-robin", ring_timeout=10,
                         wrapup=0, max_wait=60, skip_after_no_answer=30,
                         announce_position_every=None, **queue)
    engine = QueueEngine(clock, dialer, [config])
    tel = Telephony(engine)
    plan = plan_of(tmp_path, PLAN)
    return clock, dialer, engine, tel, plan, call1


def run(plan, call, tel):
    result = []
    FlowRunner(plan, call, telephony=tel, queues=tel.queues).run("main").addCallback(result.append)
    return result


def test_two_callers_are_handed_to_two_agents_in_order(tmp_path):
    clock, dialer, engine, tel, plan, call1 = setup(tmp_path)
    call2 = FakeCall(clock=clock, caller=CallerId("+12125550002", None, ""))
    call2.call_id = "call-2"
    run(plan, call1, tel)
    run(plan, call2, tel)
    first = dialer.attempts[0]
    assert first.entry.caller_handle is call1          # the first caller is offered first
    first.answer("agent-leg-1")
    assert tel.bridges[0][:2] == (call1, "agent-leg-1")
    second = [a for a in dialer.attempts if a.pending][0]
    assert second.entry.caller_handle is call2 and second.agent != first.agent
    second.answer("agent-leg-2")
    assert tel.bridges[1][:2] == (call2, "agent-leg-2")
    assert call1.variables["queue_agent"] == first.agent
    assert call1.said()[0].startswith("You are caller number 1")


def test_agent_who_does_not_answer_is_skipped(tmp_path):
    clock, dialer, engine, tel, plan, call1 = setup(tmp_path)
    run(plan, call1, tel)
    first = dialer.attempts[0]
    clock.advance(10.5)                                 # ring_timeout: no answer
    assert first.cancelled
    second = [a for a in dialer.attempts if a.pending][0]
    assert second.agent != first.agent
    second.answer("leg")
    assert tel.bridges[0][1] == "leg"


def test_max_wait_takes_the_overflow_branch(tmp_path):
    clock, dialer, engine, tel, plan, call1 = setup(tmp_path)
    result = run(plan, call1, tel)
    for _ in range(70):
        for attempt in dialer.attempts:
            if attempt.pending:
                attempt.reject()
        clock.advance(1)
    assert call1.variables["queue_result"] == "timeout"
    assert "overflow" in call1.said()


def test_caller_hanging_up_leaves_the_queue(tmp_path):
    clock, dialer, engine, tel, plan, call1 = setup(tmp_path)
    run(plan, call1, tel)
    entry = dialer.attempts[0].entry
    call1.remote_hangup()
    assert entry.position is None and dialer.attempts[0].cancelled
