"""The click-to-call state machine over a FakeTelephony on a task.Clock."""
from __future__ import annotations

import pytest
from twisted.internet import task

from ivr.api.click_to_call import (FINAL, TRANSITIONS, Input, InvalidTransition, Request,
                                   Session, State)

from .fakes import FakeTelephony

AGENT, CUSTOMER = "2001", "+12025550143"


def run(plans, clock=None, **req):
    clock = clock or task.Clock()
    tel = FakeTelephony(clock, plans)
    seen = []
    s = Session("c2c_test", Request(agent=AGENT, customer=CUSTOMER,
                                    caller_id="+12025550100", **req),
                tel, clock, listener=lambda sess, ev: seen.append(ev))
    s.start()
    return s, tel, clock, seen


def adv(clock, seconds, step=0.25):
    """Advance in exact binary steps so timers set during the advance fire on time."""
    for _ in range(round(seconds / step)):
        clock.advance(step)


def names(events):
    return [e["event"] for e in events]


def test_success_bridges_and_completes_on_customer_hangup():
    s, tel, clock, seen = run({AGENT: {"ring": 0.5, "answer": 3},
                               CUSTOMER: {"ring": 1, "answer": 4, "hangup": 60}})
    assert names(seen) == ["initiated", "ringing_agent"]
    agent = tel.all[0]
    assert agent.target == AGENT and agent.caller_id == CUSTOMER
    adv(clock, 3)
    assert names(seen)[-2:] == ["agent_answered", "ringing_customer"]
    customer = tel.all[1]
    assert customer.caller_id == "+12025550100" and customer.target == CUSTOMER
    adv(clock, 4)
    assert s.state is State.BRIDGED and tel.bridges == [(agent, customer)]
    assert seen[-1]["at"] == 7.0
    adv(clock, 60)
    assert s.state is State.COMPLETED
    assert names(seen) == ["initiated", "ringing_agent", "agent_answered", "ringing_customer",
                           "bridged", "completed"]
    final = seen[-1]
    assert final["reason"] == "customer-hangup" and final["hangup_side"] == "customer"
    assert final["talk_time"] == 60.0 and final["duration"] == 67.0
    assert agent.ended_at == 67.0 and agent.hangups  # the agent was hung up too
    assert [e["seq"] for e in seen] == list(range(1, 7))


def test_agent_busy_fails_without_calling_customer():
    s, tel, clock, seen = run({AGENT: {"fail": ("busy", 2)}})
    adv(clock, 2)
    assert s.state is State.FAILED and s.reason == "agent-busy"
    assert len(tel.all) == 1
    assert names(seen) == ["initiated", "ringing_agent", "failed"]
    assert seen[-1]["reason"] == "agent-busy"


def test_agent_no_answer_at_ring_timeout():
    s, tel, clock, seen = run({AGENT: {"ring": 1}}, agent_timeout=20)
    adv(clock, 19.75)
    assert s.state is State.RINGING_AGENT
    adv(clock, 0.25)
    assert s.state is State.FAILED and s.reason == "agent-no-answer"
    assert seen[-1]["duration"] == 20.0


@pytest.mark.parametrize("leg_reason,session_reason", [
    ("failed", "customer-failed"), ("busy", "customer-busy"), ("no-answer", "customer-no-answer"),
    ("rejected", "customer-rejected")])
def test_customer_failure_hangs_up_agent(leg_reason, session_reason):
    s, tel, clock, seen = run({AGENT: {"answer": 1}, CUSTOMER: {"fail": (leg_reason, 5)}})
    adv(clock, 6)
    assert s.state is State.FAILED and s.reason == session_reason
    agent = tel.all[0]
    assert agent.ended_at == 6.0 and agent.hangups == [session_reason]
    assert tel.bridges == []


def test_agent_hangs_up_while_customer_rings():
    s, tel, clock, seen = run({AGENT: {"answer": 1, "hangup": 2}, CUSTOMER: {"ring": 1}})
    adv(clock, 3)
    assert s.state is State.FAILED and s.reason == "agent-hangup"
    customer = tel.all[1]
    assert customer.end_reason == "cancelled"


def test_max_duration_hangs_up_both():
    s, tel, clock, seen = run({AGENT: {"answer": 1}, CUSTOMER: {"answer": 2}}, max_duration=30)
    adv(clock, 3)
    assert s.state is State.BRIDGED
    adv(clock, 29.75)
    assert s.state is State.BRIDGED
    adv(clock, 0.25)
    assert s.state is State.COMPLETED and s.reason == "max-duration"
    assert s.hangup_side == "system"
    assert all(leg.ended_at == 33.0 for leg in tel.all)
    assert seen[-1]["talk_time"] == 30.0


def test_whisper_is_spoken_to_agent_before_customer_is_called():
    s, tel, clock, seen = run({AGENT: {"answer": 1}, CUSTOMER: {"answer": 1}},
                              whisper="Call from the website")
    adv(clock, 1)
    assert s.state is State.WHISPER and tel.all[0].said == ["Call from the website"]
    assert len(tel.all) == 1
    adv(clock, 1)   # say_seconds
    assert s.state is State.RINGING_CUSTOMER
    adv(clock, 1)
    assert s.state is State.BRIDGED
    assert names(seen)[:5] == ["initiated", "ringing_agent", "agent_answered", "whisper",
                               "ringing_customer"]


def test_whisper_failure_fails_session():
    clock = task.Clock()
    tel = FakeTelephony(clock, {AGENT: {"answer": 1}})
    tel.say_fails = True
    s = Session("x", Request(agent=AGENT, customer=CUSTOMER, whisper="hi"), tel, clock)
    s.start()
    adv(clock, 1)
    assert s.state is State.FAILED and s.reason == "whisper-failed"


def test_record_starts_recordings_on_both_legs(tmp_path):
    s, tel, clock, seen = run({AGENT: {"answer": 1}, CUSTOMER: {"answer": 1}}, record=True,
                              recordings_dir=str(tmp_path))
    adv(clock, 2)
    assert tel.all[0].recordings == [str(tmp_path / "c2c_test-agent.wav")]
    assert tel.all[1].recordings == [str(tmp_path / "c2c_test-customer.wav")]
    assert s.to_dict()["recordings"]["customer"].endswith("customer.wav")


def test_cancel_while_ringing_and_after_bridge():
    s, tel, clock, seen = run({AGENT: {"ring": 1}})
    adv(clock, 1)
    assert s.cancel() is True
    assert s.state is State.FAILED and s.reason == "cancelled"
    assert tel.all[0].end_reason == "cancelled"
    assert s.cancel() is False

    s, tel, clock, seen = run({AGENT: {"answer": 1}, CUSTOMER: {"answer": 1}})
    adv(clock, 2)
    assert s.cancel() is True
    assert s.state is State.COMPLETED and s.reason == "cancelled" and s.hangup_side == "api"
    assert names(seen).count("completed") == 1


def test_late_leg_events_after_the_end_are_ignored():
    s, tel, clock, seen = run({AGENT: {"answer": 1}, CUSTOMER: {"answer": 1, "hangup": 5}},
                              max_duration=2)
    adv(clock, 100)
    assert s.state is State.COMPLETED and s.reason == "max-duration"
    assert names(seen).count("completed") == 1


def test_unknown_agent_fails_cleanly():
    clock = task.Clock()
    s = Session("x", Request(agent="9999", customer=CUSTOMER), FakeTelephony(clock), clock)
    s.start()
    assert s.state is State.FAILED and s.reason == "agent-failed"


def test_transition_table_rejects_undefined_inputs():
    s, tel, clock, seen = run({})
    with pytest.raises(InvalidTransition):
        s._fire(Input.CUSTOMER_ANSWERED)
    for state in FINAL:
        assert not any(st is state for st, _ in TRANSITIONS)
