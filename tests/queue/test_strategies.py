"""Each strategy's order with several agents, driven by a fake clock and a fake dialer."""
from ivr.queue import OutcomeKind

from tests.queue.fakes import make, outcomes


def serve(clock, dialer, engine, caller, talk=10.0):
    """Enqueue a caller, answer whichever agent rings first, hang up after ``talk``."""
    entry = engine.enqueue("sales", caller)
    got = outcomes(entry)
    pending = dialer.pending()
    assert len(pending) == 1, [a.agent for a in pending]
    agent = pending[0].agent
    pending[0].answer()
    assert got[0].kind is OutcomeKind.ANSWERED and got[0].agent == agent
    clock.advance(talk)
    assert engine.call_ended(agent)
    return agent


def test_round_robin_rotates_and_remembers_between_callers():
    clock, dialer, engine = make(strategy="round-robin", wrapup=0)
    order = [serve(clock, dialer, engine, f"c{i}") for i in range(7)]
    assert order == ["a", "b", "c", "a", "b", "c", "a"]


def test_round_robin_skips_busy_agent_and_keeps_pointer():
    clock, dialer, engine = make(strategy="round-robin", wrapup=0)
    e1 = engine.enqueue("sales", "c1")
    dialer.last("a").answer()                    # a on call (pointer at a)
    assert e1.outcome.agent == "a"
    assert serve(clock, dialer, engine, "c2") == "b"
    assert serve(clock, dialer, engine, "c3") == "c"
    assert serve(clock, dialer, engine, "c4") == "b"   # a still busy: wrap to b
    engine.call_ended("a")
    assert serve(clock, dialer, engine, "c5") == "c"
    assert serve(clock, dialer, engine, "c6") == "a"


def test_round_robin_no_answer_moves_to_next_agent_at_once():
    clock, dialer, engine = make(strategy="round-robin", ring_timeout=15)
    entry = engine.enqueue("sales", "c1")
    got = outcomes(entry)
    assert dialer.rung() == ["a"]
    clock.advance(15)                            # the engine's own ring timeout
    assert dialer.attempts[0].cancelled
    assert dialer.rung() == ["a", "b"]
    dialer.last("b").reject()                    # busy
    assert dialer.rung() == ["a", "b", "c"]
    dialer.last("c").answer()
    assert got[0].agent == "c" and got[0].wait == 15


def test_longest_idle_prefers_agent_whose_call_ended_first():
    clock, dialer, engine = make(strategy="longest-idle", wrapup=0)
    # never-called agents count as idle longest, in config order
    assert serve(clock, dialer, engine, "c1", talk=30) == "a"      # a ends at 30
    assert serve(clock, dialer, engine, "c2", talk=5) == "b"       # b ends at 35
    assert serve(clock, dialer, engine, "c3", talk=1) == "c"       # c ends at 36
    assert serve(clock, dialer, engine, "c4", talk=1) == "a"       # a idle since 30, ends 37
    assert serve(clock, dialer, engine, "c5", talk=1) == "b"       # b since 35
    assert serve(clock, dialer, engine, "c6", talk=1) == "c"
    e = engine.enqueue("sales", "x")
    assert [a.agent for a in dialer.pending()] == ["a"]   # idle since 37; b 38, c 39
    dialer.last("a").answer()
    assert e.outcome.agent == "a"


def test_longest_idle_orders_by_end_of_last_call_not_start():
    clock, dialer, engine = make(strategy="longest-idle", wrapup=0)
    ea = engine.enqueue("sales", "1")
    dialer.last("a").answer()
    eb = engine.enqueue("sales", "2")
    dialer.last("b").answer()
    ec = engine.enqueue("sales", "3")
    dialer.last("c").answer()
    assert [ea.outcome.agent, eb.outcome.agent, ec.outcome.agent] == ["a", "b", "c"]
    clock.advance(10)
    engine.call_ended("c")
    clock.advance(10)
    engine.call_ended("a")
    clock.advance(10)
    engine.call_ended("b")
    picks = []
    for i in range(3):
        engine.enqueue("sales", f"n{i}")
        (attempt,) = dialer.pending()
        picks.append(attempt.agent)
        attempt.answer()
    assert picks == ["c", "a", "b"]


def test_ring_all_rings_everyone_and_cancels_the_rest_on_answer():
    clock, dialer, engine = make(strategy="ring-all")
    entry = engine.enqueue("sales", "c1")
    got = outcomes(entry)
    assert sorted(a.agent for a in dialer.pending()) == ["a", "b", "c"]
    clock.advance(3)
    dialer.last("b").answer("leg-b")
    assert got == [got[0]] and got[0].agent == "b" and got[0].answer == "leg-b"
    assert got[0].wait == 3
    assert dialer.last("a").cancelled and dialer.last("c").cancelled
    assert not dialer.last("b").cancelled
    assert engine.agent_status("a")["state"] == "available"
    assert engine.agent_status("b")["state"] == "on-call"
    # cancelled agents were not at fault: the next caller rings them at once
    e2 = engine.enqueue("sales", "c2")
    assert sorted(a.agent for a in dialer.pending()) == ["a", "c"]
    assert e2.ringing == ("a", "c")


def test_ring_all_adds_agents_who_become_free_while_ringing():
    clock, dialer, engine = make(strategy="ring-all", wrapup=2)
    e1 = engine.enqueue("sales", "c1")
    dialer.last("a").answer()
    e2 = engine.enqueue("sales", "c2")
    assert e2.ringing == ("b", "c")
    engine.call_ended("a")
    clock.advance(2)
    assert e2.ringing == ("b", "c", "a")
    assert e1.outcome.agent == "a"


def test_ring_all_no_answer_from_anyone_skips_all_then_retries():
    clock, dialer, engine = make(strategy="ring-all", ring_timeout=10, skip_after_no_answer=20)
    engine.enqueue("sales", "c1")
    clock.advance(10)
    assert all(a.cancelled for a in dialer.attempts) and len(dialer.attempts) == 3
    clock.advance(19.5)
    assert len(dialer.attempts) == 3
    clock.advance(0.5)                            # skipped until 30
    assert sorted(a.agent for a in dialer.pending()) == ["a", "b", "c"]
