"""enqueue's on_no_agents: taken at once when no agent of the queue is logged in."""
from __future__ import annotations

from ivr.dialplan.runner import FlowRunner
from ivr.queue import QueueConfig, QueueEngine

from tests.dialplan.fakes import FakeCall
from tests.dialplan.helpers import plan_of
from tests.dialplan.test_enqueue import Telephony, run
from tests.queue.fakes import FakeDialer

PLAN = """
flows:
  main:
    - enqueue: {queue: support, hold: "Please hold.", on_timeout: overflow, on_no_agents: nobody}
    - say: "after"
  waiting:
    - enqueue: {queue: support, hold: "Please hold.", on_timeout: overflow}
  overflow:
    - say: "overflow"
  nobody:
    - say: "nobody is here"
"""


def setup(tmp_path, logged_in=(), free=()):
    call = FakeCall()
    dialer = FakeDialer(call.clock)
    config = QueueConfig("support", ("a1", "a2"), ring_timeout=10, wrapup=0, max_wait=60,
                         announce_position_every=None)
    engine = QueueEngine(call.clock, dialer, [config], is_reachable=lambda a: a in free,
                         is_logged_in=lambda a: a in logged_in)
    return call, dialer, engine, Telephony(engine), plan_of(tmp_path, PLAN)


def test_no_agent_logged_in_takes_on_no_agents_at_once(tmp_path):
    call, dialer, engine, tel, plan = setup(tmp_path)
    run(plan, call, tel)
    assert call.variables["queue_result"] == "no-agents"
    assert "nobody is here" in call.said() and "Please hold." not in call.said()
    assert dialer.attempts == [] and engine.waiting("support") == []


def test_an_agent_logged_in_but_busy_keeps_the_caller_waiting(tmp_path):
    call, dialer, engine, tel, plan = setup(tmp_path, logged_in={"a1"})
    run(plan, call, tel)
    assert "queue_result" not in call.variables and "nobody is here" not in call.said()
    assert [e.caller_handle for e in engine.waiting("support")] == [call]
    assert dialer.attempts == []                      # busy: not rung
    call.remote_hangup()
    assert engine.waiting("support") == []


def test_without_on_no_agents_the_caller_waits_for_an_agent(tmp_path):
    call, dialer, engine, tel, plan = setup(tmp_path)
    FlowRunner(plan, call, telephony=tel, queues=tel.queues).run("waiting")
    assert [e.caller_handle for e in engine.waiting("support")] == [call]
    assert "queue_result" not in call.variables
    call.remote_hangup()
    assert engine.waiting("support") == []
